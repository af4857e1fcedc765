// Go reference for bench/core_bench.c: the same four measures.
//
//	go_core switch [N]  two goroutines ping-pong with runtime.Gosched (GOMAXPROCS=1); N switches
//	                    (default 10M), best of 5
//	go_core spawn [N]   go + WaitGroup per pair, N pairs (default 2M), best of 3
//	go_core rss [N]     N goroutines (default 1M) sleeping 1 s
//	go_core timer [N]   N time.AfterFunc with uniform random delays in [0, 1)
//
// Prints key=value lines (keys prefixed go_). One measure per process. Standard library only.
package main

import (
	"bufio"
	"fmt"
	"math"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func die(format string, a ...interface{}) {
	os.Stdout.Sync()
	fmt.Fprintf(os.Stderr, "go_core: "+format+"\n", a...)
	os.Exit(1)
}

func statusKB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key+":") {
			fields := strings.Fields(line[len(key)+1:])
			if len(fields) > 0 {
				v, err := strconv.ParseInt(fields[0], 10, 64)
				if err == nil {
					return v
				}
			}
		}
	}
	return -1
}

func joinF(v []float64, prec int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return strings.Join(s, ",")
}

// ---------------------------------------------------------------------------------------------

var switchNonAlt []int64

func switchOnce(n int) float64 {
	iters := n / 2
	var last, nonAlt int64 // only touched with GOMAXPROCS=1, but use atomics to stay race-free
	var wg sync.WaitGroup
	pinger := func(me int64) {
		defer wg.Done()
		for i := 0; i < iters; i++ {
			atomic.StoreInt64(&last, me)
			runtime.Gosched()
			if atomic.LoadInt64(&last) == me {
				atomic.AddInt64(&nonAlt, 1)
			}
		}
	}
	t0 := time.Now()
	wg.Add(2)
	go pinger(1)
	go pinger(2)
	wg.Wait()
	el := time.Since(t0)
	// Go's scheduler does not promise strict alternation (the global run queue, GC workers):
	// count the Gosched calls after which the other goroutine had not run; report, not fail.
	switchNonAlt = append(switchNonAlt, nonAlt)
	return float64(el.Nanoseconds()) / float64(2*iters)
}

func benchSwitch(n int) {
	runs := make([]float64, 5)
	for r := range runs {
		runs[r] = switchOnce(n)
	}
	best := math.Inf(1)
	for _, x := range runs {
		best = math.Min(best, x)
	}
	fmt.Printf("go_switch_n=%d\n", (n/2)*2)
	fmt.Printf("go_switch_ns_runs=%s\n", joinF(runs, 2))
	fmt.Printf("go_switch_ns=%.2f\n", best)
	worst := int64(0)
	for _, v := range switchNonAlt {
		if v > worst {
			worst = v
		}
	}
	fmt.Printf("go_switch_non_switching_pct=%.3f\n", 100*float64(worst)/float64((n/2)*2))
}

// ---------------------------------------------------------------------------------------------

var ran int64

func ret0(wg *sync.WaitGroup) {
	atomic.AddInt64(&ran, 1)
	wg.Done()
}

func spawnOnce(n int) float64 {
	atomic.StoreInt64(&ran, 0)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go ret0(&wg)
		wg.Wait()
	}
	el := time.Since(t0)
	if atomic.LoadInt64(&ran) != int64(n) {
		die("spawn: %d ran, expected %d", ran, n)
	}
	return float64(n) * 1e9 / float64(el.Nanoseconds())
}

func benchSpawn(n int) {
	runs := make([]float64, 3)
	for r := range runs {
		runs[r] = spawnOnce(n)
	}
	best := 0.0
	for _, x := range runs {
		best = math.Max(best, x)
	}
	fmt.Printf("go_spawn_join_n=%d\n", n)
	fmt.Printf("go_spawn_join_per_s_runs=%s\n", joinF(runs, 0))
	fmt.Printf("go_spawn_join_per_s=%.0f\n", best)
	fmt.Printf("go_spawn_join_ns=%.1f\n", 1e9/best)
}

// ---------------------------------------------------------------------------------------------

func benchRSS(n int) {
	var wg sync.WaitGroup
	var short int64
	base := statusKB("VmRSS")
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			s := time.Now()
			time.Sleep(time.Second)
			if time.Since(s) < time.Second {
				atomic.AddInt64(&short, 1)
			}
			wg.Done()
		}()
	}
	t1 := time.Now()
	wg.Wait()
	t2 := time.Now()
	hwm := statusKB("VmHWM")
	after := statusKB("VmRSS")
	if base < 0 || hwm < 0 {
		die("rss: cannot read /proc/self/status")
	}
	fmt.Printf("go_rss_tasks=%d\n", n)
	fmt.Printf("go_rss_baseline_kb=%d\n", base)
	fmt.Printf("go_rss_peak_kb=%d\n", hwm)
	fmt.Printf("go_rss_after_join_kb=%d\n", after)
	fmt.Printf("go_rss_short_sleeps=%d\n", short)
	fmt.Printf("go_rss_per_task_bytes=%.0f\n", float64(hwm-base)*1024/float64(n))
	fmt.Printf("go_spawn_1m_us_per_task=%.3f\n", float64(t1.Sub(t0).Nanoseconds())/1e3/float64(n))
	fmt.Printf("go_rss_join_all_s=%.3f\n", t2.Sub(t1).Seconds())
	fmt.Printf("go_rss_total_elapsed_s=%.3f\n", t2.Sub(t0).Seconds())
}

// ---------------------------------------------------------------------------------------------

func atomicMax(p *int64, v int64) {
	for {
		old := atomic.LoadInt64(p)
		if v <= old || atomic.CompareAndSwapInt64(p, old, v) {
			return
		}
	}
}

func benchTimer(n int) {
	rng := rand.New(rand.NewSource(0x5eed5eed))
	delays := make([]time.Duration, n)
	for i := range delays {
		delays[i] = time.Duration(rng.Float64() * 1e9)
	}
	var fired, early int64
	worstLate := int64(math.MinInt64)
	worstLateRun := int64(math.MinInt64)
	var worstEarly int64
	var loopStart atomic.Value // time.Time: when scheduling ended
	done := make(chan struct{})
	loopStart.Store(time.Time{})

	var base time.Time
	t0 := time.Now()
	// Intended deadline: the clock read at the start of each block of 256 calls + delay.
	for i := 0; i < n; i++ {
		if i&255 == 0 {
			base = time.Now()
		}
		dl := base.Add(delays[i])
		time.AfterFunc(delays[i], func() {
			now := time.Now()
			late := now.Sub(dl).Nanoseconds()
			atomicMax(&worstLate, late)
			if late < 0 {
				atomic.AddInt64(&early, 1)
				atomicMax(&worstEarly, -late)
			}
			// Lateness not caused by the scheduling loop: only for timers that fire after it
			// ended, measured from max(deadline, end of scheduling). (Go also fires timers
			// while the scheduling loop runs; those are left out here, as nothing fires during
			// scheduling in simul or asyncio.)
			if ls := loopStart.Load().(time.Time); !ls.IsZero() {
				eff := dl
				if ls.After(eff) {
					eff = ls
				}
				atomicMax(&worstLateRun, now.Sub(eff).Nanoseconds())
			}
			if atomic.AddInt64(&fired, 1) == int64(n) {
				close(done)
			}
		})
	}
	t1 := time.Now()
	loopStart.Store(t1)
	firedDuring := atomic.LoadInt64(&fired)
	<-done
	t2 := time.Now()
	fmt.Printf("go_timer_n=%d\n", n)
	// With GOMAXPROCS=1, timers that come due while the scheduling loop runs fire (each in its
	// own goroutine) on the same P, so go_timer_ns includes running those callbacks.
	fmt.Printf("go_timer_fired_during_schedule=%d\n", firedDuring)
	fmt.Printf("go_timer_ns=%.1f\n", float64(t1.Sub(t0).Nanoseconds())/float64(n))
	fmt.Printf("go_timer_schedule_s=%.3f\n", t1.Sub(t0).Seconds())
	fmt.Printf("go_timer_worst_late_ms=%.3f\n", float64(atomic.LoadInt64(&worstLate))/1e6)
	fmt.Printf("go_timer_worst_late_after_sched_ms=%.3f\n", float64(atomic.LoadInt64(&worstLateRun))/1e6)
	fmt.Printf("go_timer_early_count=%d\n", atomic.LoadInt64(&early))
	fmt.Printf("go_timer_worst_early_ms=%.3f\n", float64(atomic.LoadInt64(&worstEarly))/1e6)
	fmt.Printf("go_timer_run_s=%.3f\n", t2.Sub(t1).Seconds())
	fmt.Printf("go_timer_total_s=%.3f\n", t2.Sub(t0).Seconds())
}

// ---------------------------------------------------------------------------------------------

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		die("usage: go_core switch|spawn|rss|timer [count]")
	}
	defaults := map[string]int{"switch": 10000000, "spawn": 2000000, "rss": 1000000, "timer": 1000000}
	m := os.Args[1]
	n, ok := defaults[m]
	if !ok {
		die("unknown measure %q", m)
	}
	if len(os.Args) == 3 {
		v, err := strconv.Atoi(os.Args[2])
		if err != nil || v <= 0 {
			die("bad count %q", os.Args[2])
		}
		n = v
	}
	runtime.GOMAXPROCS(1)
	fmt.Printf("go_gomaxprocs=%d\n", runtime.GOMAXPROCS(0))
	switch m {
	case "switch":
		benchSwitch(n)
	case "spawn":
		benchSpawn(n)
	case "rss":
		benchRSS(n)
	case "timer":
		benchTimer(n)
	}
}
