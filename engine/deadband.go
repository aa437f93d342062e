package engine

import "math"

// Deadband is the change-of-value rule that the cov transform and the OPC UA
// source's client-side filter share: when a new value of a series counts as
// changed from the last reported one.
type Deadband struct {
	// Value: a number counts as changed when its distance from the last
	// reported one is strictly greater than this (0: any difference).
	Value float64
	// Percent makes Value a percentage of |last reported|; from a last
	// reported 0 any difference counts.
	Percent bool
}

// Changed reports whether v counts as changed from last.
//
//   - Two numbers (int, uint, float) compare by distance. Two integers under
//     an absolute deadband of 0 compare exactly (a uint64 beyond float64's
//     precision too).
//   - NaN after NaN is no change; NaN after a number, or a number after NaN,
//     is one. OPC UA Part 4 (DataChangeTrigger STATUS_VALUE) has a server
//     report a single notification when a floating-point value enters the NaN
//     state; its deadband test (|last - value| > deadband) is false for any
//     NaN, so without this rule a value entering NaN would not be reported
//     (nor, once NaN were the last reported value, any number after it).
//   - Anything else (bools, strings, nulls, a number after a bool): any
//     difference is a change (Value.Equal).
func (d Deadband) Changed(last, v Value) bool {
	if !v.IsNumeric() || !last.IsNumeric() {
		return !v.Equal(last)
	}
	if v.IsInteger() && last.IsInteger() && d.Value == 0 && !d.Percent {
		return !v.Equal(last)
	}
	x, _ := v.Float64()
	l, _ := last.Float64()
	if math.IsNaN(x) || math.IsNaN(l) {
		return math.IsNaN(x) != math.IsNaN(l)
	}
	diff := math.Abs(x - l)
	if d.Percent {
		if l == 0 {
			return x != 0
		}
		return diff > d.Value/100*math.Abs(l)
	}
	return diff > d.Value
}
