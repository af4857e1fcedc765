// idle_echo.go — the Go reference for bench/run_idle.sh: an echo server with a goroutine per
// connection, reading into a buffer of the size examples/echo_streams.c uses (16 KiB) and
// writing it back, so an idle connection costs what idiomatic Go code holds for it.
//
//	idle_echo --host H --port P
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.String("port", "0", "port")
	flag.Parse()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle_echo:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			continue // out of fds for a moment: the next accept
		}
		go serve(c)
	}
}
