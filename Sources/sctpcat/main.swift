import ArgumentParser

// Parses the command line and runs one session; every failure is one line on stderr and a non-zero exit.
do {
    var command = try SCTPCat.parseAsRoot()
    try command.run()
} catch let exit as ExitCode {
    SCTPCat.exit(withError: exit)
} catch {
    let code = SCTPCat.exitCode(for: error)
    if code == .success { SCTPCat.exit(withError: error) }  // --help
    let message = SCTPCat.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    printError("sctpcat: \(message)")
    SCTPCat.exit(withError: ExitCode(code == .validationFailure ? code.rawValue : 1))
}
