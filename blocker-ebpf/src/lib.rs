//! Empty on purpose: this library target exists so that blocker-user can
//! declare a build-dependency on this crate and be rebuilt when it changes.
#![no_std]
