// Ping-pong of M messages between two goroutines over two channels of capacity C, the Go side
// of `npm run bench:fibers`: the pinger sends i, the ponger answers i+1, M/2 round trips.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	messages, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	capacity, err := strconv.Atoi(os.Args[2])
	if err != nil {
		panic(err)
	}
	rounds := messages / 2
	ping := make(chan int, capacity)
	pong := make(chan int, capacity)
	go func() {
		for k := 0; k < rounds; k++ {
			v := <-ping
			pong <- v + 1
		}
	}()
	sum := 0
	for i := 0; i < rounds; i++ {
		ping <- i
		sum += <-pong
	}
	fmt.Println(sum)
}
