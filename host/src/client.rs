//! Short-lived clients of the group, for the CLI: `dhost peers` and `dhost cast`. A client
//! joins the group like a node, asks every node to announce itself at once (so it never
//! waits for the periodic announcements), and leaves.

use crate::net::Group;
use crate::wire::{self, Announce, Frame};
use anyhow::{Context as _, bail};
use ciborium::Value;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A node that answered a survey.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its id.
    pub id: u64,
    /// Where it sends from.
    pub addr: SocketAddr,
    /// What it announced.
    pub announce: Announce,
}

/// A short-lived member of the group.
pub struct GroupClient {
    receiver: UdpSocket,
    sender: UdpSocket,
    id: u64,
    seq: u64,
    max_datagram: usize,
}

impl GroupClient {
    /// Joins `group`.
    pub fn join(group: &Group, max_datagram: usize) -> anyhow::Result<Self> {
        let receiver = group.receiver()?;
        receiver.set_nonblocking(false)?;
        Ok(GroupClient {
            receiver,
            sender: group.sender()?,
            id: rand::random(),
            seq: 0,
            max_datagram,
        })
    }

    fn send_frame(&mut self, encode: impl FnOnce(u64, &mut Vec<u8>)) -> anyhow::Result<()> {
        self.seq += 1;
        let mut datagram = Vec::new();
        wire::encode_header(self.id, &mut datagram);
        encode(self.seq, &mut datagram);
        if datagram.len() > self.max_datagram {
            bail!(
                "the call takes {} bytes encoded, more than the {} bytes one datagram carries",
                datagram.len(),
                self.max_datagram
            );
        }
        self.sender
            .send(&datagram)
            .context("cannot send to the group")?;
        Ok(())
    }

    /// Asks every node to announce itself and collects the answers that come within `wait`.
    pub fn survey(&mut self, wait: Duration) -> anyhow::Result<Vec<Answer>> {
        self.send_frame(wire::encode_query)?;
        let deadline = Instant::now() + wait;
        let mut answers: Vec<Answer> = Vec::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.receiver.set_read_timeout(Some(left))?;
            let (len, addr) = match self.receiver.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e).context("cannot receive from the group"),
            };
            let Ok(datagram) = wire::decode_datagram(&buf[..len]) else {
                continue; // not for us to judge; nodes log it
            };
            let id = datagram.header.sender;
            for frame in datagram.frames {
                if let Frame::Announce(announce) = frame {
                    answers.retain(|a| a.id != id);
                    answers.push(Answer { id, addr, announce });
                }
            }
        }
        answers.sort_by(|a, b| a.announce.name.cmp(&b.announce.name));
        Ok(answers)
    }

    /// Sends a call to every node that serves `function`.
    pub fn cast(&mut self, function: &str, args: &[Value]) -> anyhow::Result<()> {
        self.send_frame(|seq, out| wire::encode_call(seq, function, args, out))
    }
}

/// Converts a JSON value (a CLI argument) to CBOR.
pub fn json_to_cbor(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::Integer(u.into()),
            (_, Some(i), _) => Value::Integer(i.into()),
            (_, _, f) => Value::Float(f.unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Text(s),
        J::Array(items) => Value::Array(items.into_iter().map(json_to_cbor).collect()),
        J::Object(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| (Value::Text(k), json_to_cbor(v)))
                .collect(),
        ),
    }
}

/// Parses CLI arguments as JSON values, naming the one that is not.
pub fn parse_args(args: &[String]) -> anyhow::Result<Vec<Value>> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| {
            serde_json::from_str(arg)
                .map(json_to_cbor)
                .with_context(|| {
                    format!(
                        "argument {} `{arg}` is not JSON (a string needs quotes: '\"text\"')",
                        i + 1
                    )
                })
        })
        .collect()
}

impl crate::cli::SurveyArgs {
    /// Joins the group these options name.
    fn join(&self) -> anyhow::Result<(Group, GroupClient)> {
        let group = self.group.group();
        let client = GroupClient::join(&group, self.group.max_datagram())?;
        Ok((group, client))
    }
}

/// `dhost peers`: prints the nodes that answer, one a line.
pub fn peers(args: &crate::cli::PeersArgs) -> anyhow::Result<()> {
    let (group, mut client) = args.survey.join()?;
    let answers = client.survey(args.survey.wait)?;
    if answers.is_empty() {
        eprintln!(
            "no node answered on {} (interface {})",
            group.addr, group.iface
        );
        return Ok(());
    }
    println!("{:<20} {:<22} {:>10}  FUNCTIONS", "NAME", "ADDRESS", "UP");
    for a in &answers {
        let up = format!("{:.1}s", a.announce.uptime_ms as f64 / 1000.0);
        let functions = if a.announce.functions.is_empty() {
            "-".to_string()
        } else {
            a.announce.functions.join(" ")
        };
        println!(
            "{:<20} {:<22} {:>10}  {functions}",
            a.announce.name,
            a.addr,
            up.to_string()
        );
    }
    Ok(())
}

/// `dhost cast`: sends the call once, if any node serves the function.
pub fn cast(args: &crate::cli::CastArgs) -> anyhow::Result<()> {
    if !args.function.contains('#') {
        bail!(
            "`{}` is not a function id (namespace:package/interface#function)",
            args.function
        );
    }
    let values = parse_args(&args.args)?;
    let (group, mut client) = args.survey.join()?;
    let servers: Vec<String> = client
        .survey(args.survey.wait)?
        .into_iter()
        .filter(|a| a.announce.functions.contains(&args.function))
        .map(|a| a.announce.name)
        .collect();
    if servers.is_empty() {
        bail!("no node on {} serves {}", group.addr, args.function);
    }
    client.cast(&args.function, &values)?;
    eprintln!("cast {} to {}", args.function, servers.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arguments_become_cbor() {
        let args = parse_args(&[
            r#""ann""#.into(),
            "-3".into(),
            "2.5".into(),
            r#"{"x": [1, null, true]}"#.into(),
        ])
        .unwrap();
        assert_eq!(
            args,
            vec![
                Value::Text("ann".into()),
                Value::Integer((-3).into()),
                Value::Float(2.5),
                Value::Map(vec![(
                    Value::Text("x".into()),
                    Value::Array(vec![
                        Value::Integer(1.into()),
                        Value::Null,
                        Value::Bool(true)
                    ])
                )]),
            ]
        );
        let err = parse_args(&["ann".into()]).unwrap_err().to_string();
        assert!(err.contains("argument 1 `ann` is not JSON"), "{err}");
    }
}
