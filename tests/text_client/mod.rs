//! A client of the mailbox text protocol, for the tests of `dipc` and of nodes serving
//! mailboxes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A client of the text protocol.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("the server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// One reply line, without its line end.
    pub(crate) fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches(['\r', '\n']).to_string()
    }

    /// `w N LENGTH` with `data`; the reply line.
    pub(crate) fn write(&mut self, n: usize, data: &[u8]) -> String {
        let mut request = format!("w {n} {}\n", data.len()).into_bytes();
        request.extend_from_slice(data);
        self.send(&request);
        self.line()
    }

    /// `r N`: the data, or the error line.
    pub(crate) fn read(&mut self, n: usize) -> Result<Vec<u8>, String> {
        self.send(format!("r {n}\n").as_bytes());
        let head = self.line();
        let Some(len) = head.strip_prefix("OK ") else {
            return Err(head);
        };
        let mut data = vec![0u8; len.parse::<usize>().unwrap() + 2];
        self.reader.read_exact(&mut data).unwrap();
        assert_eq!(&data[data.len() - 2..], b"\r\n");
        data.truncate(data.len() - 2);
        Ok(data)
    }
}
