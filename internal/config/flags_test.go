package config

import "flag"

var update = flag.Bool("update", false, "rewrite docs/operations.md's configuration table")
