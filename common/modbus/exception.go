// Package modbus is Modbus code shared by the modbus source and the
// simulated devices (sim/modbus): the exception codes of simonvetter/modbus's
// errors, both ways.
package modbus

import (
	"errors"
	"fmt"
	"strings"

	mb "github.com/simonvetter/modbus"
)

// exceptions are the codes the library has an error for.
var exceptions = [...]struct {
	code uint8
	err  mb.Error
}{
	{1, mb.ErrIllegalFunction}, {2, mb.ErrIllegalDataAddress}, {3, mb.ErrIllegalDataValue},
	{4, mb.ErrServerDeviceFailure}, {5, mb.ErrAcknowledge}, {6, mb.ErrServerDeviceBusy},
	{8, mb.ErrMemoryParityError}, {10, mb.ErrGWPathUnavailable}, {11, mb.ErrGWTargetFailedToRespond},
}

// ExceptionCode is the Modbus exception code an error from the library
// stands for, if it is an exception answer.
func ExceptionCode(err error) (uint8, bool) {
	var me mb.Error
	if errors.As(err, &me) {
		for _, x := range exceptions {
			if x.err == me {
				return x.code, true
			}
		}
		return 0, false
	}
	// the library reports codes it has no name for as text
	var code uint8
	if err != nil && strings.HasPrefix(err.Error(), "unknown exception") {
		if _, e := fmt.Sscanf(err.Error(), "unknown exception code (%d)", &code); e == nil {
			return code, true
		}
	}
	return 0, false
}

// ExceptionError is the error a handler of the library's server returns to
// answer code: server device failure (4) for a code it has no error for.
func ExceptionError(code uint8) error {
	for _, x := range exceptions {
		if x.code == code {
			return x.err
		}
	}
	return mb.ErrServerDeviceFailure
}
