// Spawn + await of N goroutines, the Go side of `npm run bench:fibers` (scripts/bench/fibers-bench.ts).
// Each goroutine computes 2*i and hands it back through its own one-slot channel (Osprey's
// await of a fiber's value); all are started before the first is awaited, as in spawn.osp.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	results := make([]chan int, n)
	for i := 0; i < n; i++ {
		c := make(chan int, 1)
		results[i] = c
		go func(i int, c chan int) { c <- 2 * i }(i+1, c)
	}
	sum := 0
	for i := n - 1; i >= 0; i-- {
		sum += <-results[i]
	}
	fmt.Println(sum)
}
