//! Fail2Ban-compatible filters: filter files, regex translation, date parsing, matching.
