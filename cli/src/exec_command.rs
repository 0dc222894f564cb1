//! `listen --exec CMD`: the shell command run once per message, and the check at
//! start-up that the program it names exists.
//!
//! `sh -c CMD` always starts, so a program that does not exist would only show as a
//! FAIL for every message (the shell exits 127). When CMD is a simple command — no
//! quoting, expansion, redirection, operator, glob or assignment — its first word is the
//! program: a path (it contains `/`) must be an executable file, a name must be one on
//! `PATH` or one of the shell's own words (`exit`, `true`, `read` …). A CMD with shell
//! syntax is not checked: what it runs is the shell's to decide.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::Failure;

/// Characters that make CMD more than a program and its plain arguments.
const SHELL_SYNTAX: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
    '=', '{', '}', '!', '\n',
];

/// Reserved words and builtins of POSIX `sh` (and the common `local`): not files.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done", "echo",
    "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for",
    "getopts", "hash", "if", "in", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
    "return", "set", "shift", "test", "then", "times", "trap", "true", "type", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while",
];

/// The `--exec` command, checked at start-up.
pub(crate) struct ExecCommand {
    command: String,
}

impl ExecCommand {
    /// Checks `command` as the module comment says, against this process's `PATH`:
    /// exit status 2, naming the program, when it is missing or not executable.
    pub(crate) fn new(command: String) -> Result<Self, Failure> {
        check(&command, std::env::var_os("PATH").as_deref())
            .map_err(|e| Failure::malformed(format!("--exec {command:?}: {e}")))?;
        Ok(ExecCommand { command })
    }

    /// Runs `sh -c CMD` with `line` and a newline on stdin; `Ok` when it exits 0.
    ///
    /// On unix the shell leads a process group of its own: a terminal's Ctrl-C, which
    /// signals the whole foreground group, reaches `listen` (which drains) but not the
    /// handlers the drain waits for. A handler still running when this future is dropped
    /// (a second signal ends `listen` at once) is killed, its whole group on unix: the
    /// programs the shell started too.
    pub(crate) async fn run(&self, line: &str) -> Result<(), String> {
        let command = &self.command;
        let mut shell = tokio::process::Command::new("sh");
        shell
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        shell.process_group(0);
        let mut child = shell
            .spawn()
            .map_err(|e| format!("cannot run {command:?}: {e}"))?;
        #[cfg(unix)]
        let mut group = ProcessGroup(child.id());
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is fine.
            let _ = stdin.write_all(line.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("{command:?}: {e}"))?;
        // Reaped: its process group id may be reused from here on.
        #[cfg(unix)]
        {
            group.0 = None;
        }
        if status.success() {
            Ok(())
        } else {
            Err(format!("{command:?} exited with {status}"))
        }
    }
}

/// The process group an `--exec` shell leads, killed (SIGKILL) when dropped: dropped
/// only while the shell is not yet reaped, so that the group id cannot have been reused.
#[cfg(unix)]
struct ProcessGroup(Option<u32>);

#[cfg(unix)]
impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let leader = self
            .0
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(leader) = leader {
            // The group may be gone already; there is nothing else to do then.
            let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
        }
    }
}

/// The program a simple command runs, when the check applies: `None` for shell syntax
/// or one of the shell's own words.
fn program(command: &str) -> Option<&str> {
    if command.contains(SHELL_SYNTAX) {
        return None;
    }
    let first = command.split_whitespace().next()?;
    (!SHELL_WORDS.contains(&first)).then_some(first)
}

/// Why `command` cannot run, given the `PATH` searched (`None`: unset, not checked).
fn check(command: &str, path: Option<&OsStr>) -> Result<(), String> {
    if command.trim().is_empty() {
        return Err("empty command".to_owned());
    }
    let Some(program) = program(command) else {
        return Ok(());
    };
    if program.contains('/') {
        return match executable(Path::new(program)) {
            Executable::Yes => Ok(()),
            Executable::Missing => Err(format!("{program}: no such file")),
            Executable::No => Err(format!("{program}: not an executable file")),
        };
    }
    let Some(path) = path else {
        return Ok(());
    };
    let found = std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .any(|candidate| matches!(executable(&candidate), Executable::Yes));
    if found {
        Ok(())
    } else {
        Err(format!("{program}: not found on PATH"))
    }
}

enum Executable {
    Yes,
    No,
    Missing,
}

fn executable(file: &Path) -> Executable {
    let Ok(metadata) = std::fs::metadata(file) else {
        return Executable::Missing;
    };
    #[cfg(unix)]
    let runnable = {
        use std::os::unix::fs::PermissionsExt;
        metadata.permissions().mode() & 0o111 != 0
    };
    #[cfg(not(unix))]
    let runnable = true;
    if metadata.is_file() && runnable {
        Executable::Yes
    } else {
        Executable::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory for one test's files.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "alipay-msg-exec-command-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_program_of_a_simple_command_only() {
        assert_eq!(program("./handle.sh --verbose"), Some("./handle.sh"));
        assert_eq!(program("  jq -c . "), Some("jq"));
        for not_checked in [
            "cat > /dev/null",
            "handle | tee log",
            "FOO=1 handle",
            "\"/opt/my handler\"",
            "$HOME/bin/handle",
            "exit 0",
            "read line",
            "if true; then :; fi",
            "handle && echo ok",
        ] {
            assert_eq!(program(not_checked), None, "{not_checked}");
        }
    }

    #[test]
    fn a_path_must_be_an_executable_file() {
        let dir = scratch("path");
        assert_eq!(
            check("/nonexistent/prog --flag", None),
            Err("/nonexistent/prog: no such file".to_owned())
        );
        let dir_name = dir.to_str().unwrap();
        assert_eq!(
            check(dir_name, None),
            Err(format!("{dir_name}: not an executable file"))
        );
        let script = dir.join("handle.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        let name = script.to_str().unwrap();
        #[cfg(unix)]
        {
            assert_eq!(
                check(name, None),
                Err(format!("{name}: not an executable file"))
            );
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(check(&format!("{name} arg"), None), Ok(()));
    }

    #[cfg(unix)]
    #[test]
    fn a_name_is_searched_on_path() {
        use std::os::unix::fs::PermissionsExt;
        let (first, second) = (scratch("path-a"), scratch("path-b"));
        let program = second.join("handle");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([&first, &second]).unwrap();
        assert_eq!(check("handle --flag", Some(&path)), Ok(()));
        assert_eq!(
            check("other", Some(&path)),
            Err("other: not found on PATH".to_owned())
        );
        // The shell's own words and unset PATH are not checked; an empty CMD is refused.
        assert_eq!(check("true", Some(&path)), Ok(()));
        assert_eq!(check("other", None), Ok(()));
        assert_eq!(check(" ", None), Err("empty command".to_owned()));
    }
}
