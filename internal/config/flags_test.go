package config

import "flag"

var update = flag.Bool("update", false, "rewrite README.md's configuration table")
