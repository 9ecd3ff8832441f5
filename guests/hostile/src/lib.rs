//! A guest that attacks the node it runs on, one attack per exported function, so the
//! tests can check that its jail holds and the node survives. What it learns (a file's
//! contents, an environment variable) it prints, so a test can see what it got.

wit_bindgen::generate!({
    world: "dhost:hostile/hostile-guest",
    path: ["../../wit/node", "../../wit/chat", "../../wit/hostile"],
    generate_all,
});

use exports::dhost::hostile::attacks::Guest;
use std::hint::black_box;

struct Hostile;

#[allow(unconditional_recursion)] // the point of the attack
fn recurse(depth: u64) -> u64 {
    // black_box keeps the compiler from turning the recursion into a loop.
    black_box(recurse(black_box(depth + 1))) + 1
}

impl Guest for Hostile {
    fn spin() {
        let mut n = 0u64;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }

    fn busy(ms: u32) {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms.into());
        let mut n = 0u64;
        while std::time::Instant::now() < until {
            n = black_box(n.wrapping_add(1));
        }
        println!("hostile: busy for {ms} ms");
    }

    fn chat(text: String) {
        dhost::chat::chat::message("hostile", &text);
    }

    fn send_run(function: String, calls: Vec<u8>) {
        dstc::node::runs::send_run(&function, &calls);
        println!("hostile: sent a run of {} bytes to {function}", calls.len());
    }

    fn hog(mib: u32) {
        let mut blocks = Vec::new();
        for _ in 0..mib {
            let mut block = vec![0u8; 1 << 20];
            block[black_box(4096)] = 1;
            blocks.push(block);
        }
        println!("hostile: holding {} MiB", black_box(blocks).len());
    }

    fn recurse() {
        println!("hostile: {}", recurse(0));
    }

    fn read_file(path: String) {
        match std::fs::read_to_string(&path) {
            Ok(text) => println!("hostile: read {path}: {} bytes", text.len()),
            Err(e) => println!("hostile: cannot read {path}: {e}"),
        }
    }

    fn write_file(path: String, text: String) {
        match std::fs::write(&path, text) {
            Ok(()) => println!("hostile: wrote {path}"),
            Err(e) => println!("hostile: cannot write {path}: {e}"),
        }
    }

    fn read_clock() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        println!("hostile: clock {now}");
        eprintln!("hostile: clock {now} (stderr)");
    }

    fn lookup(name: String) {
        use std::net::ToSocketAddrs;
        match (name.as_str(), 80).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                println!("hostile: {name} is {}", addrs.join(" "));
            }
            Err(e) => println!("hostile: cannot look up {name}: {e}"),
        }
    }

    fn connect(addr: String) {
        match std::net::TcpStream::connect(&addr) {
            Ok(_) => println!("hostile: connected to {addr}"),
            Err(e) => println!("hostile: cannot connect to {addr}: {e}"),
        }
    }

    fn read_env(name: String) {
        match std::env::var(&name) {
            Ok(value) => println!("hostile: {name}={value}"),
            Err(e) => println!("hostile: cannot read {name}: {e}"),
        }
    }
}

export!(Hostile);
