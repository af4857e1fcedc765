// The Go crypto/tls echo server of the TLS benchmark (bench/run_tls.sh): one goroutine per
// connection reading and writing until the peer closes, Go's default TLS settings (it negotiates
// TLS 1.3 with AES-128-GCM against OpenSSL, as the other servers do). Pinned to one core by the
// script, so GOMAXPROCS follows the affinity mask and is 1.
//
// Usage: go_tls_echo --host H --port P --tls-cert FILE --tls-key FILE
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"net"
)

func handle(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 65536)
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
	port := flag.String("port", "8443", "port")
	certFile := flag.String("tls-cert", "", "certificate chain (PEM)")
	keyFile := flag.String("tls-key", "", "private key (PEM)")
	flag.Parse()
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := tls.Listen("tcp", net.JoinHostPort(*host, *port),
		&tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go handle(c)
	}
}
