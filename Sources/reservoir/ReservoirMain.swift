// The `reservoir` executable: everything lives in ReservoirCommand, where tests can reach it.
import ArgumentParser
import ReservoirCommand

@main
extension ReservoirCLI {}
