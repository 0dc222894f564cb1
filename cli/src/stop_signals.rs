//! The signals that stop `listen`: SIGINT (a terminal's Ctrl-C) and SIGTERM (what
//! systemd, Docker and Kubernetes send) on unix; Ctrl-C elsewhere.

use crate::Failure;

/// A signal asking the process to stop.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StopSignal {
    /// SIGINT, or Ctrl-C where there are no unix signals.
    Interrupt,
    /// SIGTERM.
    #[cfg_attr(not(unix), allow(dead_code))]
    Terminate,
}

impl StopSignal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number (130 SIGINT, 143 SIGTERM): the status a shell reports
    /// for a process that signal ended, which scripts and service managers read as
    /// "stopped by a signal", apart from every status a command chooses (0 to 3).
    pub(crate) fn exit_status(self) -> u8 {
        match self {
            StopSignal::Interrupt => 128 + 2,
            StopSignal::Terminate => 128 + 15,
        }
    }
}

/// The stop signals, received as events instead of ending the process.
pub(crate) struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers: from here on SIGINT and SIGTERM no longer end the process
    /// but wait to be received. Called inside the runtime.
    pub(crate) fn install() -> Result<Self, Failure> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind: SignalKind, name: &str| {
                signal(kind).map_err(|e| Failure {
                    code: 2,
                    message: format!("cannot handle {name}: {e}"),
                })
            };
            Ok(StopSignals {
                interrupt: install(SignalKind::interrupt(), "SIGINT")?,
                terminate: install(SignalKind::terminate(), "SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// The next stop signal.
    pub(crate) async fn recv(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => StopSignal::Interrupt,
                _ = self.terminate.recv() => StopSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            // Installed at the first poll; a Ctrl-C before it ends the process, as
            // stopping would.
            let _ = tokio::signal::ctrl_c().await;
            StopSignal::Interrupt
        }
    }
}
