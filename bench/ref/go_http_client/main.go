// Requests per second of Go's net/http client: C goroutines, each a loop of GETs through one
// http.Client (its Transport keeps C idle connections per host) for S seconds after a warm-up,
// bodies read whole; the bar for bench/run_http_client.sh. GOMAXPROCS is left to the pinning
// (taskset gives it one core, as the other clients have).
//
//	go_http_client URL CONCURRENCY SECONDS   prints go_req_per_s=...
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: go_http_client URL CONCURRENCY SECONDS")
		os.Exit(2)
	}
	url := os.Args[1]
	conc, _ := strconv.Atoi(os.Args[2])
	secs, _ := strconv.ParseFloat(os.Args[3], 64)
	tr := &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	client := &http.Client{Transport: tr}
	start := time.Now().Add(time.Duration(secs * 0.2 * float64(time.Second)))
	stop := start.Add(time.Duration(secs * float64(time.Second)))
	var count, errors int64
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if !time.Now().Before(stop) {
					return
				}
				ok := false
				r, err := client.Get(url)
				if err == nil {
					_, err = io.ReadAll(r.Body)
					r.Body.Close()
					ok = err == nil && r.StatusCode == 200
				}
				now := time.Now()
				if !now.Before(start) && now.Before(stop) {
					if ok {
						atomic.AddInt64(&count, 1)
					} else {
						atomic.AddInt64(&errors, 1)
					}
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("go_req_per_s=%.0f\ngo_errors=%d\ngo_version=%s\ngo_maxprocs=%d\n",
		float64(count)/secs, errors, runtime.Version(), runtime.GOMAXPROCS(0))
}
