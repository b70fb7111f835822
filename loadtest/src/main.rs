//! `wsx-loadtest`: the command line of the load generator (see loadtest/README.md).

use std::process::ExitCode;

use clap::Parser;
use wsx_loadtest::cli::{Cli, Command};
use wsx_loadtest::driver::RunError;
use wsx_loadtest::{compare, output};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(&cli.command) {
        Ok(clean) => {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(RunError::Usage(e)) => {
            eprintln!("wsx-loadtest: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("wsx-loadtest: {e}");
            ExitCode::from(3)
        }
    }
}

/// Runs the command and writes its outputs; `Ok(false)` when the run met errors (the report
/// is still complete).
fn execute(command: &Command) -> Result<bool, RunError> {
    let io = |what: &str, e: std::io::Error| RunError::Usage(format!("cannot write {what}: {e}"));
    if let Command::Compare(args) = command {
        let c = compare::run(args)?;
        print!("{}", c.table());
        if let Some(path) = &args.json {
            output::write_json(path, &c).map_err(|e| io("the JSON report", e))?;
        }
        if let Some(path) = &args.svg {
            output::write_compare_svg(path, &c).map_err(|e| io("the SVG chart", e))?;
        }
        return Ok(c.runs.iter().flatten().all(|r| r.errors.total == 0));
    }
    let report = wsx_loadtest::run(command)?;
    let common = command.common().expect("a mode has common flags");
    let json_to_stdout = common.json.as_deref() == Some(std::path::Path::new("-"));
    if json_to_stdout {
        eprint!("{}", report.table());
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &common.json {
        output::write_json(path, &report).map_err(|e| io("the JSON report", e))?;
    }
    if let Some(path) = &common.svg {
        output::write_svg(path, &report).map_err(|e| io("the SVG chart", e))?;
    }
    Ok(report.errors.total == 0 && report.ended_early.is_none())
}
