package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	simmodbus "github.com/flowd/flowd/sim/modbus"
)

func cmdSimModbus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flowd sim modbus", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5020", "host:port of the first device; device i listens on port+i")
	devices := fs.Int("devices", 1, "number of devices")
	registers := fs.Int("registers", 100, "bulk holding/input registers per device from address 1000 (uint16, changing every tick)")
	bits := fs.Int("bits", 64, "coils and discrete inputs per device")
	unit := fs.Uint("unit", 1, "unit id served (0 is always served; others answer exception 11)")
	interval := fs.Duration("interval", time.Second, "time between value changes")
	record := fs.String("record", "", "append one JSON line per answered request to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd sim modbus [flags]\n\nModbus TCP devices serving every data type in every byte and word order\n(register map: go doc github.com/flowd/flowd/sim/modbus).")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	host, portStr, err := net.SplitHostPort(*listen)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port <= 0 {
		fmt.Fprintf(stderr, "flowd sim modbus: --listen: want host:port, got %q\n", *listen)
		return exitUsage
	}
	if *unit < 1 || *unit > 255 {
		fmt.Fprintf(stderr, "flowd sim modbus: --unit: want 1 to 255, got %d\n", *unit)
		return exitUsage
	}
	cfg := simmodbus.Config{Host: host, Port: port, Devices: *devices, Registers: *registers, Bits: *bits,
		Unit: uint8(*unit), Interval: *interval, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(stderr, "flowd sim modbus:", err)
			return exitInvalid
		}
		defer f.Close()
		cfg.Record = f
	}
	ctx, stop := untilInterrupted(0)
	defer stop()
	sim, err := simmodbus.Start(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "flowd sim modbus:", err)
		return exitInvalid
	}
	defer sim.Close()
	fmt.Fprintf(stdout, "%d modbus devices ready on %s:%d-%d (unit %d, %d registers, %d bits, interval %s)\n",
		*devices, host, port, port+*devices-1, *unit, *registers, *bits, *interval)
	<-ctx.Done()
	return exitOK
}
