//! Log sources: files across rotation, the systemd journal, command output.
