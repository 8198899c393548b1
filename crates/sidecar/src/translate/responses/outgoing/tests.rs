use super::*;
use bytes::Bytes;

fn events(out: &[Bytes]) -> Vec<Value> {
    out.iter()
        .filter_map(|b| {
            let text = std::str::from_utf8(b).ok()?;
            let data = text.lines().find_map(|l| l.strip_prefix("data: "))?;
            serde_json::from_str(data).ok()
        })
        .collect()
}

#[test]
fn interleaved_calls_stay_open_and_close_with_their_whole_arguments() {
    let mut w = Writer::new(Echo::default(), 0);
    let mut out = w.start(Some("m"), None);
    out.extend(w.call(0, "call_a", "first"));
    out.extend(w.call(1, "call_b", "second"));
    out.extend(w.arguments(0, "{\"x\":"));
    out.extend(w.arguments(1, "{\"y\":"));
    out.extend(w.arguments(0, "1}"));
    out.extend(w.arguments(1, "2}"));
    w.stop(Stop::Completed);
    out.extend(w.complete());
    let e = events(&out);
    for (i, ev) in e.iter().enumerate() {
        assert_eq!(ev["sequence_number"], json!(i));
    }
    let deltas: Vec<(u64, &str)> = e
        .iter()
        .filter(|v| v["type"] == "response.function_call_arguments.delta")
        .map(|v| {
            (
                v["output_index"].as_u64().unwrap_or(9),
                v["delta"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        deltas,
        [(0, "{\"x\":"), (1, "{\"y\":"), (0, "1}"), (1, "2}")]
    );
    let done: Vec<&str> = e
        .iter()
        .filter(|v| v["type"] == "response.output_item.done")
        .map(|v| v["item"]["arguments"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(done, ["{\"x\":1}", "{\"y\":2}"]);
    assert_eq!(
        e.last().map(|v| v["type"].clone()),
        Some(json!("response.completed"))
    );
}

#[test]
fn text_after_calls_closes_them_first_and_missing_call_ids_are_made_up() {
    let mut w = Writer::new(Echo::default(), 0);
    let mut out = w.start(None, None);
    out.extend(w.call(0, "", "f"));
    out.extend(w.text("done", false));
    let e = events(&out);
    let kinds: Vec<&str> = e.iter().filter_map(|v| v["type"].as_str()).collect();
    assert_eq!(
        kinds[2..],
        [
            "response.output_item.added",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta"
        ]
    );
    let call_id = e[2]["item"]["call_id"].as_str().unwrap_or("");
    assert!(call_id.starts_with("call_plumb_"), "{call_id}");
    assert!(is_plumbs(e[2]["item"]["id"].as_str().unwrap_or("")));
    assert!(!is_plumbs("rs_0123") && !is_plumbs("msg_abc"));
}
