//! Gap filling: the statuses of a timeline newer than a given id, read from the REST API.
//!
//! `min_id=X` asks for the statuses immediately newer than X (Mastodon answers them newest
//! first, `limit` at most, 40 for timelines); the next page starts after the newest of them,
//! which the `Link` header's `rel="prev"` URL names. Paging that way walks the gap forward,
//! oldest first, up to the page limit.

use http::{HeaderValue, header};

use super::dedup::StatusId;
use super::options::Timeline;
use crate::http_client::{self, describe_failure, is_permanent_failure};
use crate::net::{Endpoint, encode_query_value, query_pairs};

/// Statuses per page: the most Mastodon's timelines give.
pub(crate) const PAGE_SIZE: usize = 40;

/// A REST page larger than this is refused (40 statuses are a few hundred kilobytes).
const MAX_PAGE_BYTES: usize = 32 << 20;

/// What a gap fill found.
#[derive(Debug, Default)]
pub(crate) struct GapFill {
    /// Statuses newer than the given id, oldest first, each with its JSON as served.
    pub statuses: Vec<(StatusId, Vec<u8>)>,
    /// Pages read.
    pub pages: usize,
    /// The last page was short: the gap is filled up to the present. `false` when the page
    /// limit stopped the walk first.
    pub complete: bool,
}

/// Why a gap fill failed.
#[derive(Debug)]
pub(crate) enum GapFillError {
    /// The server refuses the request (a token is missing, the timeline does not exist).
    Refused(String),
    /// The request failed on the way; it may work later.
    Failed(String),
}

/// The statuses of `timeline` newer than `after`, at most `max_pages` pages.
pub(crate) async fn statuses_after(
    server: &Endpoint,
    timeline: &Timeline,
    authorization: Option<&HeaderValue>,
    after: &StatusId,
    max_pages: usize,
) -> Result<GapFill, GapFillError> {
    let (timeline_path, fixed_params) = timeline.rest_path();
    // A server installed under a path (`https://host/mastodon`) keeps it.
    let path = format!(
        "{}{timeline_path}",
        server.path_and_query.trim_end_matches('/')
    );
    let headers: Vec<_> =
        std::iter::once((header::ACCEPT, HeaderValue::from_static("application/json")))
            .chain(authorization.map(|a| (header::AUTHORIZATION, a.clone())))
            .collect();
    let mut fill = GapFill::default();
    let mut min_id = after.as_str().to_string();
    while fill.pages < max_pages {
        let mut query: Vec<String> = fixed_params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect();
        query.push(format!("min_id={}", encode_query_value(&min_id)));
        query.push(format!("limit={PAGE_SIZE}"));
        let path_and_query = format!("{path}?{}", query.join("&"));
        let response = http_client::get(server, &path_and_query, &headers)
            .await
            .map_err(GapFillError::Failed)?;
        let status = response.status();
        if !status.is_success() {
            let reason = format!("GET {path_and_query}: {}", describe_failure(response).await);
            return Err(if is_permanent_failure(status) {
                GapFillError::Refused(reason)
            } else {
                GapFillError::Failed(reason)
            });
        }
        let next_min_id = response
            .headers()
            .get_all(header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|link| link_param(link, "prev", "min_id"));
        let body = http_client::read_body(response, MAX_PAGE_BYTES)
            .await
            .map_err(GapFillError::Failed)?;
        fill.pages += 1;
        let mut page = Vec::new();
        for status in split_json_array(&body).map_err(GapFillError::Failed)? {
            let id = StatusId::of_status(status).ok_or_else(|| {
                GapFillError::Failed(format!("GET {path_and_query}: a status without an id"))
            })?;
            page.push((id, status.to_vec()));
        }
        page.sort_by(|a, b| a.0.cmp(&b.0));
        let newest = page.last().map(|(id, _)| id.clone());
        let short = page.len() < PAGE_SIZE;
        fill.statuses.extend(page);
        match (newest, short) {
            (None, _) | (_, true) => {
                fill.complete = true;
                break;
            }
            (Some(newest), false) => {
                // The server's own cursor when it gives one, else the newest status's id.
                min_id = next_min_id.unwrap_or_else(|| newest.as_str().to_string());
            }
        }
    }
    Ok(fill)
}

/// The value of query parameter `param` in the URL of the `rel="{rel}"` entry of a `Link`
/// header (`<https://h/api/v1/timelines/public?min_id=5>; rel="prev", <...>; rel="next"`).
pub(crate) fn link_param(link: &str, rel: &str, param: &str) -> Option<String> {
    link.split(',').find_map(|entry| {
        let (url, params) = entry.split_once(';')?;
        let is_rel = params.split(';').any(|p| {
            p.trim()
                .strip_prefix("rel=")
                .is_some_and(|v| v.trim_matches('"').split_whitespace().any(|r| r == rel))
        });
        if !is_rel {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let query = url.split_once('?')?.1;
        query_pairs(query)
            .into_iter()
            .find(|(k, _)| k == param)
            .map(|(_, v)| v)
    })
}

/// The elements of a JSON array, as the bytes the server sent: statuses are passed on as
/// served, not re-serialised.
pub(crate) fn split_json_array(body: &[u8]) -> Result<Vec<&[u8]>, String> {
    let not_array = || "the answer is not a JSON array".to_string();
    let text = body.trim_ascii();
    let inner = text
        .strip_prefix(b"[")
        .and_then(|t| t.strip_suffix(b"]"))
        .ok_or_else(not_array)?;
    let mut elements = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0usize, false, false, 0usize);
    for (i, &b) in inner.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1).ok_or_else(not_array)?,
            b',' if depth == 0 => {
                elements.push(inner[start..i].trim_ascii());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 || in_string {
        return Err(not_array());
    }
    let last = inner[start..].trim_ascii();
    if !last.is_empty() || !elements.is_empty() {
        elements.push(last);
    }
    if elements.iter().any(|e| e.is_empty()) {
        return Err(not_array());
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_split_into_their_elements_as_written() {
        let body = br#" [ {"id":"2","content":"a, [b] {c}","x":"\"]"} , {"id":"1"} ] "#;
        assert_eq!(
            split_json_array(body).unwrap(),
            vec![
                &br#"{"id":"2","content":"a, [b] {c}","x":"\"]"}"#[..],
                &br#"{"id":"1"}"#[..]
            ]
        );
        assert_eq!(split_json_array(b"[]").unwrap(), Vec::<&[u8]>::new());
        assert!(split_json_array(br#"{"error":"x"}"#).is_err());
        assert!(split_json_array(b"[{},]").is_err());
        assert!(split_json_array(br#"[{"a":"]"#).is_err());
    }

    #[test]
    fn link_headers_name_the_next_page() {
        let link = r#"<https://mastodon.example/api/v1/timelines/public?limit=40&max_id=7163058>; rel="next", <https://mastodon.example/api/v1/timelines/public?limit=40&min_id=7275607>; rel="prev""#;
        assert_eq!(
            link_param(link, "prev", "min_id").as_deref(),
            Some("7275607")
        );
        assert_eq!(
            link_param(link, "next", "max_id").as_deref(),
            Some("7163058")
        );
        assert_eq!(link_param(link, "prev", "max_id"), None);
        assert_eq!(link_param("", "prev", "min_id"), None);
    }
}
