package app

import "github.com/spf13/cobra"

// localCommands are the commands for people on their own machine: a standalone NATS server,
// the whole system for development (gatehouse dev), and logging in to a Gatehouse proxy.
func localCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newNATSCommand(g, runNATS),
		newDevCommand(),
		newLoginCommand(),
		newCredentialCommand(),
	}
}
