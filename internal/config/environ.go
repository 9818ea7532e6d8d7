package config

import "strings"

// EnvPrefix begins the name of every environment variable Load reads.
const EnvPrefix = "WITHDRAW_"

// WithoutSettings returns environ (os.Environ's form, "NAME=value") less
// every variable Load would read: the environment for a child process that
// is to be configured only by what its caller adds, not by the caller's
// own settings.
func WithoutSettings(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}
