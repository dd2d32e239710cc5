//! `fnlens search`: log search against a running server, printed for a terminal or as JSON.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// The query: words, "phrases", AND/OR/NOT, -word, prefix*, field:value (function, version,
    /// level, request_id, source), attributes.key:value, attributes.key:>10.
    query: String,
    /// How far back to search: 15m, 2h, 7d, ...
    #[arg(long, default_value = "15m")]
    since: String,
    /// Most lines to print from the past.
    #[arg(long, short = 'n', default_value_t = 100)]
    limit: usize,
    /// Then keep printing new matching lines as they are ingested.
    #[arg(long, short = 'f')]
    follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Color by level.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// The fnlens server.
    #[arg(long, env = "FNLENS_URL", default_value = "http://127.0.0.1:7070")]
    server: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

pub(crate) async fn run(args: SearchArgs) -> anyhow::Result<()> {
    if fnlens_model::parse_duration_ms(&args.since).is_none() {
        bail!(
            "--since {:?} is not a duration like 15m, 2h or 7d",
            args.since
        );
    }
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let printer = Printer {
        json: args.json,
        color,
    };
    let base = args.server.trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();

    // Subscribe before searching, so no line falls between the past and the live stream.
    let mut tail = if args.follow {
        let mut stream = SseStream::open(&client, &base, &args.query).await?;
        match stream.next().await? {
            Some((event, _)) if event == "subscribed" => {}
            other => bail!("the server did not start the tail: {other:?}"),
        }
        Some(stream)
    } else {
        None
    };

    let resp = client
        .get(format!("{base}/api/v1/logs/search"))
        .query(&[
            ("q", args.query.as_str()),
            ("start", &format!("now-{}", args.since)),
            ("limit", &args.limit.to_string()),
        ])
        .send()
        .await
        .with_context(|| format!("connecting to {base}"))?;
    let body = api_json(resp).await?;
    let hits = body["hits"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    // The API answers newest first; a terminal reads oldest first, newest at the bottom.
    for hit in hits.iter().rev() {
        printer.print(&mut out, hit)?;
    }
    out.flush()?;
    drop(out);
    if !args.json {
        eprintln!(
            "{} of {} matching lines in the last {} ({:.1} ms)",
            hits.len(),
            body["total"],
            args.since,
            body["took_ms"].as_f64().unwrap_or(0.0)
        );
    }

    if let Some(stream) = &mut tail {
        while let Some((event, data)) = stream.next().await? {
            let mut out = std::io::stdout().lock();
            match event.as_str() {
                "line" => {
                    let hit: Value = serde_json::from_str(&data).context("a tail line")?;
                    printer.print(&mut out, &hit)?;
                }
                "dropped" => {
                    eprintln!("fnlens: this terminal fell behind; the server dropped {data}")
                }
                _ => {}
            }
            out.flush()?;
        }
        bail!("the server closed the tail");
    }
    Ok(())
}

/// The JSON body of a successful answer, or the server's error as ours.
async fn api_json(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.context("reading the server's answer")?;
    if !status.is_success() {
        bail!(
            "{} ({}): {}",
            body["error"].as_str().unwrap_or("error"),
            status,
            body["detail"].as_str().unwrap_or_default()
        );
    }
    Ok(body)
}

struct Printer {
    json: bool,
    color: bool,
}

impl Printer {
    fn print(&self, out: &mut impl Write, hit: &Value) -> std::io::Result<()> {
        if self.json {
            return writeln!(out, "{hit}");
        }
        let s = |k: &str| hit[k].as_str().unwrap_or_default();
        let level = s("level");
        let (dim, level_style, fn_style) = if self.color {
            (
                Style::new().dimmed(),
                level_style(level),
                Style::new().fg_color(Some(AnsiColor::Cyan.into())),
            )
        } else {
            (Style::new(), Style::new(), Style::new())
        };
        let message = s("message").trim_end();
        let request = match hit["request_id"].as_str() {
            Some(id) => format!(" {dim}{id}{dim:#}"),
            None => String::new(),
        };
        writeln!(
            out,
            "{dim}{}{dim:#} {level_style}{level:<5}{level_style:#} {fn_style}{}{fn_style:#}{request} {message}",
            s("ts"),
            s("function"),
        )
    }
}

fn level_style(level: &str) -> Style {
    match level {
        "FATAL" | "ERROR" => Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
        "WARN" => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        "INFO" => Style::new().fg_color(Some(AnsiColor::Green.into())),
        _ => Style::new().dimmed(),
    }
}

/// A Server-Sent Events stream read chunk by chunk.
struct SseStream {
    resp: reqwest::Response,
    buf: String,
}

impl SseStream {
    async fn open(client: &reqwest::Client, base: &str, query: &str) -> anyhow::Result<SseStream> {
        let resp = client
            .get(format!("{base}/api/v1/logs/tail"))
            .query(&[("q", query)])
            .send()
            .await
            .with_context(|| format!("connecting to {base}"))?;
        if !resp.status().is_success() {
            api_json(resp).await?;
            bail!("the server refused the tail");
        }
        Ok(SseStream {
            resp,
            buf: String::new(),
        })
    }

    /// The next event's name and data; `None` when the server closes the stream.
    async fn next(&mut self) -> anyhow::Result<Option<(String, String)>> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = (String::from("message"), String::new());
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if event == "heartbeat" || (data.is_empty() && event == "message") {
                    continue;
                }
                return Ok(Some((event, data)));
            }
            match self.resp.chunk().await? {
                Some(chunk) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_read_like_a_log() {
        let hit = serde_json::json!({
            "ts": "2026-01-01T00:00:00.000Z", "level": "ERROR", "function": "checkout",
            "request_id": "r-1", "message": "boom\n"
        });
        let mut out = Vec::new();
        Printer {
            json: false,
            color: false,
        }
        .print(&mut out, &hit)
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-01-01T00:00:00.000Z ERROR checkout r-1 boom\n"
        );
        let mut out = Vec::new();
        Printer {
            json: false,
            color: true,
        }
        .print(&mut out, &hit)
        .unwrap();
        let colored = String::from_utf8(out).unwrap();
        assert!(colored.contains("\u{1b}[1m\u{1b}[31mERROR"), "{colored:?}");
    }
}
