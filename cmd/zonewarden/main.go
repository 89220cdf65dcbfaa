// Command zonewarden turns one Docker host into security zones and proves
// that they hold. See the README for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zonewarden/zonewarden/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
