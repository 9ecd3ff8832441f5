//! Exports the 2018 DSTC plugin ABI from the `dhost` executable, so that native plugins
//! opened with dlopen find these functions (they are defined in `guest/native.rs`).

fn main() {
    for symbol in [
        "dstc_register_function",
        "dstc_srv_send",
        "dstc_epoll_ctl",
        "dstc_register_typed",
        "dstc_send_typed",
        "dstc_register_client_function",
        "dstc_remote_function_available",
        "dstc_remote_function_available_by_name",
        "dstc_peer_count",
        "dstc_connected",
    ] {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={symbol}");
        // The hot-path benchmark loads a plugin too.
        println!("cargo:rustc-link-arg-benches=-Wl,--export-dynamic-symbol={symbol}");
    }
}
