//! Configuration: raw TOML → validated settings.
