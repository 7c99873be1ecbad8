//! Block Kit's limits as Slack applies them to `chat.postMessage` and
//! `chat.update` (<https://api.slack.com/reference/block-kit/blocks>):
//! the fake Slack refuses a message over any of them with `invalid_blocks`,
//! as Slack does. Written from the reference, not from airlock's renderer.

#![allow(dead_code)]

use serde_json::Value;

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn text_of(v: &Value) -> usize {
    chars(&v["text"])
}

/// Everything in `body` (a message's JSON) that Slack would refuse.
pub fn problems(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if chars(&body["text"]) > 40_000 {
        out.push("text over 40000".to_string());
    }
    let Some(blocks) = body["blocks"].as_array() else {
        return out;
    };
    if blocks.len() > 50 {
        out.push(format!("{} blocks (at most 50)", blocks.len()));
    }
    for (i, b) in blocks.iter().enumerate() {
        let mut over = |what: &str, n: usize, max: usize| {
            if n > max {
                out.push(format!(
                    "block {i}: {what} of {n} characters (at most {max})"
                ));
            }
        };
        match b["type"].as_str().unwrap_or("") {
            "header" => over("header text", text_of(&b["text"]), 150),
            "section" => {
                over("section text", text_of(&b["text"]), 3000);
                if let Some(fields) = b["fields"].as_array() {
                    over("field count", fields.len(), 10);
                    for f in fields {
                        over("field", text_of(f), 2000);
                    }
                }
            }
            "context" => {
                if let Some(elements) = b["elements"].as_array() {
                    over("context element count", elements.len(), 10);
                    for e in elements {
                        over("context text", text_of(e), 3000);
                    }
                }
            }
            "actions" => {
                if let Some(elements) = b["elements"].as_array() {
                    over("action count", elements.len(), 25);
                    for e in elements {
                        over("button text", text_of(&e["text"]), 75);
                        over("button value", chars(&e["value"]), 2000);
                        over("action_id", chars(&e["action_id"]), 255);
                    }
                }
            }
            _ => {}
        }
    }
    out
}
