package dispatch

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// FileSettings are the per-account dispatcher overrides of the WITHDRAW_CONFIG
// file, under its top-level "dispatch" key:
//
//	dispatch:
//	  rates:                       # provider calls per second, by "channel/account"
//	    wechatpay_platform/default: {per_second: 50, burst: 10}
//	  per_merchant:                # in-flight cap per merchant, by "provider:account"
//	    wechatpay:default: 2
type FileSettings struct {
	Rates       map[string]Rate `yaml:"rates"`
	PerMerchant map[string]int  `yaml:"per_merchant"`
}

// LoadFileSettings reads the "dispatch" section of the config file at path;
// an empty path or a file without the section gives no overrides.
func LoadFileSettings(path string) (FileSettings, error) {
	if path == "" {
		return FileSettings{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return FileSettings{}, fmt.Errorf("dispatch settings: %w", err)
	}
	var doc struct {
		Dispatch FileSettings `yaml:"dispatch"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return FileSettings{}, fmt.Errorf("dispatch settings in %s: %w", path, err)
	}
	for k, r := range doc.Dispatch.Rates {
		if !strings.Contains(k, "/") || r.PerSecond <= 0 || r.Burst < 0 {
			return FileSettings{}, fmt.Errorf("dispatch settings in %s: rates[%q]: want \"channel/account\" with per_second > 0 and burst ≥ 0", path, k)
		}
	}
	for k, n := range doc.Dispatch.PerMerchant {
		if !strings.Contains(k, ":") || n < 1 {
			return FileSettings{}, fmt.Errorf("dispatch settings in %s: per_merchant[%q]: want \"provider:account\" with a cap ≥ 1", path, k)
		}
	}
	return doc.Dispatch, nil
}

// perMerchant is the in-flight cap of a merchant: the override of its
// provider account ("wechatpay:default" for "wechatpay:default:1900000109"),
// or the default.
func (d *Dispatcher) perMerchant(merchantKey string) int {
	if len(d.opts.PerMerchantOverrides) > 0 {
		parts := strings.SplitN(merchantKey, ":", 3)
		if len(parts) >= 2 {
			if n, ok := d.opts.PerMerchantOverrides[parts[0]+":"+parts[1]]; ok {
				return n
			}
		}
	}
	return d.opts.PerMerchant
}
