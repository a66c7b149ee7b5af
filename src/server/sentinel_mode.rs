//! `rf-server --sentinel`: runs the sentinel instead of the data server, as
//! `redis-server sentinel.conf --sentinel` does, through the sentinel family's entry point.

use std::process::ExitCode;

/// Runs sentinel mode with the command line (program name excluded).
pub fn run(args: Vec<String>) -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = vec!["rf-server".into()];
    argv.extend(args.into_iter().map(Into::into));
    crate::sentinel::cli::main(argv)
}
