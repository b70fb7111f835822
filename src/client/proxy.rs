//! Proxies (STUB: replaced by the proxy module).
