package modbus

import (
	"errors"
	"fmt"
	"testing"

	mb "github.com/simonvetter/modbus"
)

func TestExceptionCodesBothWays(t *testing.T) {
	for _, code := range []uint8{1, 2, 3, 4, 5, 6, 8, 10, 11} {
		err := fmt.Errorf("read holding 0+1: %w", ExceptionError(code))
		if got, ok := ExceptionCode(err); !ok || got != code {
			t.Errorf("code %d: back as %d %v", code, got, ok)
		}
	}
	if got, ok := ExceptionCode(errors.New("unknown exception code (7)")); !ok || got != 7 {
		t.Errorf("unnamed code: %d %v", got, ok)
	}
	for _, err := range []error{mb.ErrRequestTimedOut, errors.New("connection reset"), nil} {
		if code, ok := ExceptionCode(err); ok {
			t.Errorf("%v: exception %d", err, code)
		}
	}
	if ExceptionError(7) != mb.ErrServerDeviceFailure {
		t.Error("a code without an error answers device failure")
	}
}
