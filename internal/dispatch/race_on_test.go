//go:build race

package dispatch_test

// raceEnabled: the race detector slows RSA and HTTP several times over, so
// the system test runs a smaller volume under it (make test also runs it at
// full volume without -race).
const raceEnabled = true
