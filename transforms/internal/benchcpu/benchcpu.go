// Package benchcpu reports a benchmark's throughput per second of the
// benchmark thread's own CPU time (Linux RUSAGE_THREAD), next to the usual
// wall-clock figures: on a shared, loaded machine wall time mostly measures
// the other processes, CPU time measures the code.
package benchcpu

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

const rusageThread = 1 // RUSAGE_THREAD on Linux

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Loop runs body b.N times (via b.Loop) on a locked OS thread and reports
// points/s (wall) and points/cpu-s (thread CPU time), with perOp points per
// call of body.
func Loop(b *testing.B, perOp int, body func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	var cpu time.Duration
	n := 0
	start := threadCPU()
	for b.Loop() {
		body()
		n++
	}
	cpu = threadCPU() - start
	if n == 0 {
		return
	}
	b.ReportMetric(float64(n*perOp)/b.Elapsed().Seconds(), "points/s")
	if cpu > 0 {
		b.ReportMetric(float64(n*perOp)/cpu.Seconds(), "points/cpu-s")
	}
}
