package engine

// Preparer is implemented by components that need something of the machine
// they run on (a writable state directory, a certificate store). The engine
// calls Prepare for every component while it builds a runtime, before anything
// runs, so `flowd run` refuses to start with a clear error instead of finding
// out at shutdown. Constructors stay free of such checks: `flowd validate`
// runs anywhere.
type Preparer interface {
	Prepare() error
}
