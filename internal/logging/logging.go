// Package logging sets up the process-wide slog logger: JSON lines on
// stderr, at the configured level.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Setup installs a JSON logger at level (debug, info, warn, error) as the
// default and returns it.
func Setup(w io.Writer, level, program string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("program", program)
	slog.SetDefault(log)
	return log, nil
}
