//! `/events` routes and the `/events/in` and `/events/out` websockets.

use std::collections::HashSet;
use std::time::Duration;

use actix_web::web::{Data, Path, Payload, Query};
use actix_web::{HttpRequest, HttpResponse, get, post};
use actix_ws::{AggregatedMessage, CloseCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prefect_core::events::{EventPageResult, PageToken};
use prefect_domain::events::{Countable, Event, EventCount, EventFilter, EventOccurredFilter, EventOrder, EventPage, TimeUnit};
use prefect_domain::time;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, parse_json};
use crate::routes::{no_content, ok};
use crate::websocket::{self, close, next_text};

/// Events per `/events/filter` page (and its maximum).
const PAGE_SIZE: u64 = 50;
/// How far back `/events/out` backfills.
const MAX_BACKFILL: Duration = Duration::from_secs(15 * 60);
/// Events per backfill page.
const BACKFILL_PAGE_SIZE: u64 = 250;

#[derive(Debug, Deserialize, ToSchema)]
pub struct EventFilterBody {
    #[serde(default)]
    pub filter: Option<EventFilter>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct NextPageQuery {
    #[serde(rename = "page-token")]
    #[param(rename = "page-token")]
    page_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CountBody {
    pub filter: EventFilter,
    #[serde(default)]
    pub time_unit: TimeUnit,
    #[serde(default = "one")]
    pub time_interval: f64,
}

fn one() -> f64 {
    1.0
}

/// Accepts events over HTTP (204); 429 with Retry-After when the pipeline is saturated.
#[utoipa::path(tag = "Events", request_body = Vec<Event>, responses((status = 204), (status = 429)))]
#[post("")]
pub async fn create_events(state: Data<ApiState>, body: Json<Vec<Event>>) -> ApiResult<HttpResponse> {
    let bus = state.core.events();
    let received = prefect_core::events::receive(body.0, bus.limits())?;
    let wait = Duration::from_secs_f64(state.core.settings().event_publish_wait_seconds);
    bus.publish_batch(received, wait).await?;
    Ok(no_content())
}

fn page(req: &HttpRequest, result: EventPageResult) -> EventPage {
    let next_page = result.next.map(|token| {
        let encoded = BASE64.encode(serde_json::to_vec(&token).unwrap_or_default());
        let info = req.connection_info();
        format!("{}://{}/api/events/filter/next?page-token={}", info.scheme(), info.host(), encoded)
    });
    EventPage { events: result.events, total: result.total, next_page }
}

/// The first page of events matching the filter (newest first by default).
#[utoipa::path(tag = "Events", request_body = EventFilterBody, responses((status = 200, body = EventPage)))]
#[post("/filter")]
pub async fn filter_events(req: HttpRequest, state: Data<ApiState>, body: Json<EventFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let limit = b.limit.unwrap_or(PAGE_SIZE);
    if limit > PAGE_SIZE {
        return Err(ApiError::invalid(&["body", "limit"], "Input should be less than or equal to 50", Value::from(limit)));
    }
    let result = state.core.query_events(b.filter.unwrap_or_default(), limit).await?;
    Ok(ok(&page(&req, result)))
}

/// The page a `next_page` link points at; 403 for a token that does not decode.
#[utoipa::path(tag = "Events", params(NextPageQuery), responses((status = 200, body = EventPage), (status = 403)))]
#[get("/filter/next")]
pub async fn next_events_page(req: HttpRequest, state: Data<ApiState>, query: Query<NextPageQuery>) -> ApiResult<HttpResponse> {
    let forbidden = || ApiError::Core(prefect_core::Error::Forbidden("Forbidden".to_owned()));
    let bytes = BASE64.decode(query.page_token.as_bytes()).map_err(|_| forbidden())?;
    let token: PageToken = serde_json::from_slice(&bytes).map_err(|_| forbidden())?;
    let result = state.core.query_events_page(token).await?;
    Ok(ok(&page(&req, result)))
}

/// Counts events by day, time bucket, event name or resource.
#[utoipa::path(tag = "Events", request_body = CountBody, responses((status = 200, body = Vec<EventCount>), (status = 422)))]
#[post("/count-by/{countable}")]
pub async fn count_events(state: Data<ApiState>, countable: Path<String>, body: Json<CountBody>) -> ApiResult<HttpResponse> {
    let countable: Countable = serde_json::from_value(Value::String(countable.into_inner()))
        .map_err(|_| ApiError::invalid(&["path", "countable"], "Input should be 'day', 'time', 'event' or 'resource'", Value::Null))?;
    let b = body.0;
    Ok(ok(&state.core.count_events(b.filter, countable, b.time_unit, b.time_interval).await?))
}

/// Streams events in: one JSON event per text frame, no acknowledgements.
/// Duplicates are harmless (events are stored once by id); a full pipeline slows the reader down.
#[utoipa::path(tag = "Events", responses((status = 101)))]
#[get("/in")]
pub async fn events_in(req: HttpRequest, body: Payload, state: Data<ApiState>) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let auth = state.settings.auth_string.clone();
    websocket::accept(&req, body, auth, move |mut session, mut stream| async move {
        let bus = state.core.events();
        while let Some(text) = next_text(&mut session, &mut stream).await {
            let event = parse_json::<Event>(text.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|e| prefect_core::events::receive(vec![e], bus.limits()).map_err(|e| e.to_string()));
            match event {
                Ok(mut received) => {
                    if let Some(event) = received.pop()
                        && bus.publish_client(event).await.is_err()
                    {
                        close(session, CloseCode::Error, "The event pipeline has stopped").await;
                        return;
                    }
                }
                Err(reason) => {
                    tracing::debug!(%reason, "Invalid event on /events/in; closing.");
                    close(session, CloseCode::Invalid, "Invalid event").await;
                    return;
                }
            }
        }
    })
}

/// Streams events out: after the handshake the client sends
/// `{"type": "filter", "filter": …, "backfill": true}`; the server backfills stored
/// matches (up to 15 minutes back, oldest first), then sends live events.
#[utoipa::path(tag = "Events", responses((status = 101)))]
#[get("/out")]
pub async fn events_out(req: HttpRequest, body: Payload, state: Data<ApiState>) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let auth = state.settings.auth_string.clone();
    websocket::accept(&req, body, auth, move |mut session, mut stream| async move {
        let Some(text) = next_text(&mut session, &mut stream).await else {
            return;
        };
        let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if message.get("type").and_then(Value::as_str) != Some("filter") {
            close(session, CloseCode::Protocol, "Expected 'filter' message").await;
            return;
        }
        let wants_backfill = message.get("backfill").and_then(Value::as_bool).unwrap_or(true);
        let mut filter: EventFilter = match serde_json::from_value(message.get("filter").cloned().unwrap_or(json!({}))) {
            Ok(f) => f,
            Err(e) => {
                close(session, CloseCode::Protocol, &format!("Invalid filter: {e}")).await;
                return;
            }
        };
        let now = time::now();
        let explicit_window = filter.occurred.is_some();
        let (since, until) = filter.window(now);
        let earliest = now - chrono::TimeDelta::from_std(MAX_BACKFILL).unwrap_or_default();
        filter.occurred = Some(EventOccurredFilter { since: since.max(earliest), until });
        filter.order = EventOrder::Asc;
        // Live events happen after "now"; a window the client did not set must not cut them off.
        let mut live_filter = filter.clone();
        if !explicit_window {
            live_filter.occurred = Some(EventOccurredFilter { since: since.max(earliest), until: now + chrono::TimeDelta::days(36_500) });
        }

        // Subscribe before backfilling so nothing falls between the two.
        let mut live = state.core.events().subscribe();
        let mut sent = HashSet::new();
        if wants_backfill {
            let mut page = state.core.query_events(filter.clone(), BACKFILL_PAGE_SIZE).await;
            while let Ok(result) = page {
                for event in &result.events {
                    sent.insert(event.id);
                    if session.text(json!({"type": "event", "event": event}).to_string()).await.is_err() {
                        return;
                    }
                }
                match result.next {
                    Some(token) => page = state.core.query_events_page(token).await,
                    None => break,
                }
            }
        }
        loop {
            tokio::select! {
                incoming = stream.recv() => match incoming {
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
                event = live.recv() => match event {
                    Ok(event) => {
                        if sent.remove(&event.id) || !live_filter.includes(&event, time::now()) {
                            continue;
                        }
                        if session.text(json!({"type": "event", "event": &*event}).to_string()).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(skipped)) => tracing::warn!(skipped, "A /events/out subscriber fell behind."),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    })
}
