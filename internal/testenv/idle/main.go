// Command idle is the only file of the tests' FROM-scratch image
// (testenv.ScratchImage): it waits until it is told to stop. The image has
// no shell, no busybox and no other tool, like a distroless one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
