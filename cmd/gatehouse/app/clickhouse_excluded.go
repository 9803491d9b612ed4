//go:build gatehouse_noclickhouse

package app

import (
	"errors"

	"github.com/spf13/cobra"
)

// newClickHouseCommand stands in for `gatehouse clickhouse` in builds without it (the container
// image): the launcher loads libchdb.so with purego, which links the binary against the C
// library's dynamic loader, and the image has none. It is a development and test tool.
func newClickHouseCommand(*globals) *cobra.Command {
	return &cobra.Command{
		Use:    "clickhouse",
		Short:  "Not in this build: the ClickHouse engine launcher is for development and tests",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("gatehouse clickhouse is not in this build (the container image); use a gatehouse binary built with make build")
		},
	}
}
