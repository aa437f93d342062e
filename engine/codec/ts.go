package codec

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// ErrTimeRange is wrapped by every error for a timestamp that Unix
// nanoseconds in an int64 cannot hold. Such a time is rejected rather than
// wrapped around into another century.
var ErrTimeRange = errors.New("outside 1677-09-21T00:12:43.145224192Z … 2262-04-11T23:47:16.854775807Z, the range of Unix nanoseconds")

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// ParseTime reads an RFC 3339 time as Unix nanoseconds.
func ParseTime(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("ts %q is not RFC 3339", s)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("ts %q is %w", s, ErrTimeRange)
	}
	return t.UnixNano(), nil
}

// MillisToNanos converts whole Unix milliseconds to nanoseconds.
func MillisToNanos(ms int64) (int64, error) {
	if ms > math.MaxInt64/1_000_000 || ms < math.MinInt64/1_000_000 {
		return 0, fmt.Errorf("ts %d ms is %w", ms, ErrTimeRange)
	}
	return ms * 1e6, nil
}

// FloatMillisToNanos converts Unix milliseconds held in a float64 to
// nanoseconds: exactly for whole numbers, truncated below the nanosecond.
func FloatMillisToNanos(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("ts %v is not a time", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return MillisToNanos(int64(f))
	}
	ns, _ := new(big.Float).Mul(new(big.Float).SetFloat64(f), big.NewFloat(1e6)).Int(nil)
	if !ns.IsInt64() {
		return 0, fmt.Errorf("ts %v ms is %w", f, ErrTimeRange)
	}
	return ns.Int64(), nil
}

// maxExp bounds a millisecond number's exponent: 1e13 ms is already past
// 2262, and a bound keeps "1e999999999" from costing memory.
const maxExp = 40

// ParseMillis reads a JSON number of Unix milliseconds exactly, with integer
// arithmetic (no float rounding): 1700000000001 is …20.001Z. A fraction
// below the nanosecond is truncated.
func ParseMillis(s string) (int64, error) {
	if !strings.ContainsAny(s, ".eE") {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return 0, fmt.Errorf("ts %s ms is %w", s, ErrTimeRange)
			}
			return 0, fmt.Errorf("ts %s is neither RFC 3339 nor Unix milliseconds", s)
		}
		return MillisToNanos(ms)
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || i == 0 {
			return 0, fmt.Errorf("ts %s is neither RFC 3339 nor Unix milliseconds", s)
		}
		mant, exp = s[:i], e
	}
	if _, err := strconv.ParseFloat(mant, 64); err != nil || strings.ContainsAny(mant, "xXpP_nN") {
		return 0, fmt.Errorf("ts %s is neither RFC 3339 nor Unix milliseconds", s)
	}
	if exp > maxExp || exp < -maxExp {
		if strings.Trim(mant, "-+0.") == "" {
			return 0, nil
		}
		if exp > 0 {
			return 0, fmt.Errorf("ts %s ms is %w", s, ErrTimeRange)
		}
		return 0, nil // below a nanosecond
	}
	r, ok := new(big.Rat).SetString(mant)
	if !ok {
		return 0, fmt.Errorf("ts %s is neither RFC 3339 nor Unix milliseconds", s)
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp+6))), nil)
	if exp+6 >= 0 {
		r.Mul(r, new(big.Rat).SetInt(scale))
	} else {
		r.Quo(r, new(big.Rat).SetInt(scale))
	}
	ns := new(big.Int).Quo(r.Num(), r.Denom()) // truncates toward zero
	if !ns.IsInt64() {
		return 0, fmt.Errorf("ts %s ms is %w", s, ErrTimeRange)
	}
	return ns.Int64(), nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
