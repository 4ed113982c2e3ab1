/*
 * test_metrics.c -- per-worker metric blocks summed and rendered as
 * Prometheus text: exact output for a known sequence over two blocks,
 * label escaping, cumulative histogram buckets, stable route slots, and
 * two writer threads racing a reader.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "ts_config.h"
#include "ts_test.h"

/* The value of one series ("name{labels}") in a rendering, or -1. */
static long long
series_value(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
		p += n;
	}
	return -1;
}

/* Number of times a substring occurs. */
static int
count_of(const char *text, const char *needle)
{
	int n = 0;

	for (; (text = strstr(text, needle)) != NULL; text += strlen(needle))
		n++;
	return n;
}

static const char expected_render[] =
    "# HELP tracestitch_requests_total Requests answered, by route and "
    "status class.\n"
    "# TYPE tracestitch_requests_total counter\n"
    "tracestitch_requests_total{route=\"unmatched\",code=\"1xx\"} 0\n"
    "tracestitch_requests_total{route=\"unmatched\",code=\"2xx\"} 0\n"
    "tracestitch_requests_total{route=\"unmatched\",code=\"3xx\"} 0\n"
    "tracestitch_requests_total{route=\"unmatched\",code=\"4xx\"} 0\n"
    "tracestitch_requests_total{route=\"unmatched\",code=\"5xx\"} 1\n"
    "tracestitch_requests_total{route=\"api\",code=\"1xx\"} 1\n"
    "tracestitch_requests_total{route=\"api\",code=\"2xx\"} 2\n"
    "tracestitch_requests_total{route=\"api\",code=\"3xx\"} 0\n"
    "tracestitch_requests_total{route=\"api\",code=\"4xx\"} 1\n"
    "tracestitch_requests_total{route=\"api\",code=\"5xx\"} 0\n"
    "# HELP tracestitch_response_bytes_total Response body bytes sent "
    "to clients, by route.\n"
    "# TYPE tracestitch_response_bytes_total counter\n"
    "tracestitch_response_bytes_total{route=\"unmatched\"} 0\n"
    "tracestitch_response_bytes_total{route=\"api\"} 16\n"
    "# HELP tracestitch_upstream_errors_total Failed upstream "
    "exchanges, by route and kind.\n"
    "# TYPE tracestitch_upstream_errors_total counter\n"
    "tracestitch_upstream_errors_total{route=\"unmatched\","
    "kind=\"connect\"} 1\n"
    "tracestitch_upstream_errors_total{route=\"unmatched\","
    "kind=\"timeout\"} 0\n"
    "tracestitch_upstream_errors_total{route=\"unmatched\","
    "kind=\"reset\"} 0\n"
    "tracestitch_upstream_errors_total{route=\"unmatched\","
    "kind=\"protocol\"} 0\n"
    "tracestitch_upstream_errors_total{route=\"unmatched\","
    "kind=\"tls\"} 0\n"
    "tracestitch_upstream_errors_total{route=\"api\",kind=\"connect\"} "
    "0\n"
    "tracestitch_upstream_errors_total{route=\"api\",kind=\"timeout\"} "
    "1\n"
    "tracestitch_upstream_errors_total{route=\"api\",kind=\"reset\"} "
    "0\n"
    "tracestitch_upstream_errors_total{route=\"api\","
    "kind=\"protocol\"} 0\n"
    "tracestitch_upstream_errors_total{route=\"api\",kind=\"tls\"} 1\n"
    "# HELP tracestitch_upstream_retries_total Requests sent again to a "
    "server after a failed attempt, by route and reason.\n"
    "# TYPE tracestitch_upstream_retries_total counter\n"
    "tracestitch_upstream_retries_total{route=\"unmatched\",reason=\"connect_failure\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"unmatched\",reason=\"reset\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"unmatched\",reason=\"timeout\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"unmatched\",reason=\"502\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"unmatched\",reason=\"503\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"unmatched\",reason=\"504\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"api\",reason=\"connect_failure\"} 1\n"
    "tracestitch_upstream_retries_total{route=\"api\",reason=\"reset\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"api\",reason=\"timeout\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"api\",reason=\"502\"} 2\n"
    "tracestitch_upstream_retries_total{route=\"api\",reason=\"503\"} 0\n"
    "tracestitch_upstream_retries_total{route=\"api\",reason=\"504\"} 0\n"
    "# HELP tracestitch_upstream_retry_budget_exhausted_total Retries "
    "not sent because the route's retry budget was spent, by route.\n"
    "# TYPE tracestitch_upstream_retry_budget_exhausted_total counter\n"
    "tracestitch_upstream_retry_budget_exhausted_total{route=\"unmatched\"} 0\n"
    "tracestitch_upstream_retry_budget_exhausted_total{route=\"api\"} 1\n"
    "# HELP tracestitch_request_duration_seconds Request duration, "
    "from the request to the last byte sent, by route.\n"
    "# TYPE tracestitch_request_duration_seconds histogram\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.0005\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.001\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.0025\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.005\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.01\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.025\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.05\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.1\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.25\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"0.5\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"1\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"2.5\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"5\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"10\"} 0\n"
    "tracestitch_request_duration_seconds_bucket{route=\"unmatched\","
    "le=\"+Inf\"} 1\n"
    "tracestitch_request_duration_seconds_sum{route=\"unmatched\"} 20\n"
    "tracestitch_request_duration_seconds_count{route=\"unmatched\"} "
    "1\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.0005\"} 3\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.001\"} 3\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.0025\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.005\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.01\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.025\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.05\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.1\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.25\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"0.5\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"1\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"2.5\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"5\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"10\"} 4\n"
    "tracestitch_request_duration_seconds_bucket{route=\"api\","
    "le=\"+Inf\"} 4\n"
    "tracestitch_request_duration_seconds_sum{route=\"api\"} 0.0023\n"
    "tracestitch_request_duration_seconds_count{route=\"api\"} 4\n"
    "# HELP tracestitch_upstream_connect_duration_seconds Time to open "
    "a new upstream connection (TLS included), by route.\n"
    "# TYPE tracestitch_upstream_connect_duration_seconds histogram\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.0005\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.001\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.0025\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.005\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.01\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.025\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.05\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.1\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.25\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"0.5\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"1\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"2.5\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"5\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"10\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"unmat"
    "ched\",le=\"+Inf\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_sum{route=\"unmatche"
    "d\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_count{route=\"unmatc"
    "hed\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.0005\"} 0\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.001\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.0025\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.005\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.01\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.025\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.05\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.1\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.25\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"0.5\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"1\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"2.5\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"5\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"10\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_bucket{route=\"api\""
    ",le=\"+Inf\"} 1\n"
    "tracestitch_upstream_connect_duration_seconds_sum{route=\"api\"} "
    "0.0007\n"
    "tracestitch_upstream_connect_duration_seconds_count{route=\"api\"}"
    " 1\n"
    "# HELP tracestitch_upstream_response_duration_seconds Time from "
    "the request sent upstream to the first response byte, by route.\n"
    "# TYPE tracestitch_upstream_response_duration_seconds histogram\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.0005\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.001\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.0025\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.005\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.01\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.025\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.05\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.1\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.25\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"0.5\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"1\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"2.5\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"5\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"10\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"unma"
    "tched\",le=\"+Inf\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_sum{route=\"unmatch"
    "ed\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_count{route=\"unmat"
    "ched\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.0005\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.001\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.0025\"} 0\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.005\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.01\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.025\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.05\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.1\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.25\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"0.5\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"1\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"2.5\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"5\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"10\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_bucket{route=\"api"
    "\",le=\"+Inf\"} 1\n"
    "tracestitch_upstream_response_duration_seconds_sum{route=\"api\"} "
    "0.003\n"
    "tracestitch_upstream_response_duration_seconds_count{route=\"api\""
    "} 1\n"
    "# HELP tracestitch_cors_preflights_total CORS preflights answered "
    "by the gateway, by route and result.\n"
    "# TYPE tracestitch_cors_preflights_total counter\n"
    "tracestitch_cors_preflights_total{route=\"unmatched\","
    "result=\"allowed\"} 0\n"
    "tracestitch_cors_preflights_total{route=\"unmatched\","
    "result=\"refused\"} 0\n"
    "tracestitch_cors_preflights_total{route=\"api\","
    "result=\"allowed\"} 2\n"
    "tracestitch_cors_preflights_total{route=\"api\","
    "result=\"refused\"} 2\n"
    "# HELP tracestitch_cors_refusals_total Refused CORS preflights, "
    "by route, kind and refused header.\n"
    "# TYPE tracestitch_cors_refusals_total counter\n"
    "tracestitch_cors_refusals_total{route=\"api\",kind=\"origin\","
    "header=\"\"} 1\n"
    "tracestitch_cors_refusals_total{route=\"api\",kind=\"header\","
    "header=\"tracestate\"} 1\n"
    "# HELP tracestitch_cors_disallowed_origin_total Actual requests "
    "of a CORS route whose Origin is not allowed.\n"
    "# TYPE tracestitch_cors_disallowed_origin_total counter\n"
    "tracestitch_cors_disallowed_origin_total{route=\"unmatched\"} 0\n"
    "tracestitch_cors_disallowed_origin_total{route=\"api\"} 1\n"
    "# HELP tracestitch_propagation_extracted_total Incoming trace "
    "contexts by propagation style and result.\n"
    "# TYPE tracestitch_propagation_extracted_total counter\n"
    "tracestitch_propagation_extracted_total{style=\"datadog\","
    "result=\"valid\"} 2\n"
    "tracestitch_propagation_extracted_total{style=\"datadog\","
    "result=\"invalid\"} 0\n"
    "tracestitch_propagation_extracted_total{style=\"tracecontext\","
    "result=\"valid\"} 0\n"
    "tracestitch_propagation_extracted_total{style=\"tracecontext\","
    "result=\"invalid\"} 0\n"
    "tracestitch_propagation_extracted_total{style=\"baggage\","
    "result=\"valid\"} 0\n"
    "tracestitch_propagation_extracted_total{style=\"baggage\","
    "result=\"invalid\"} 0\n"
    "tracestitch_propagation_extracted_total{style=\"b3\","
    "result=\"valid\"} 0\n"
    "tracestitch_propagation_extracted_total{style=\"b3\","
    "result=\"invalid\"} 1\n"
    "tracestitch_propagation_extracted_total{style=\"b3multi\","
    "result=\"valid\"} 0\n"
    "tracestitch_propagation_extracted_total{style=\"b3multi\","
    "result=\"invalid\"} 0\n"
    "# HELP tracestitch_propagation_traces_total Gateway spans by what "
    "extraction decided: a continued trace, a new one, or a new one "
    "linked to the incoming (restart).\n"
    "# TYPE tracestitch_propagation_traces_total counter\n"
    "tracestitch_propagation_traces_total{outcome=\"continued\"} 2\n"
    "tracestitch_propagation_traces_total{outcome=\"new\"} 3\n"
    "tracestitch_propagation_traces_total{outcome=\"restarted\"} 1\n"
    "# HELP tracestitch_propagation_conflicts_total Valid incoming "
    "contexts of another trace than the one continued, kept as span "
    "links.\n"
    "# TYPE tracestitch_propagation_conflicts_total counter\n"
    "tracestitch_propagation_conflicts_total 1\n"
    "# HELP tracestitch_open_connections Open client connections.\n"
    "# TYPE tracestitch_open_connections gauge\n"
    "tracestitch_open_connections 2\n"
    "# HELP tracestitch_buffered_body_bytes Request-body bytes held against "
    "server.limits.max_buffered_body_bytes.\n"
    "# TYPE tracestitch_buffered_body_bytes gauge\n"
    "tracestitch_buffered_body_bytes 0\n"
    "# HELP tracestitch_websocket_tunnels Open WebSocket tunnels (client "
    "connections switched after a 101).\n"
    "# TYPE tracestitch_websocket_tunnels gauge\n"
    "tracestitch_websocket_tunnels 1\n"
    "# HELP tracestitch_connections_accepted_total Client connections "
    "accepted\n"
    "# TYPE tracestitch_connections_accepted_total counter\n"
    "tracestitch_connections_accepted_total 3\n"
    "# HELP tracestitch_connections_refused_total Client connections "
    "closed at once over server.limits.max_connections\n"
    "# TYPE tracestitch_connections_refused_total counter\n"
    "tracestitch_connections_refused_total{reason=\"max_connections\"} 4\n"
    "# HELP tracestitch_framing_rejected_total Requests refused by the "
    "framing guard\n"
    "# TYPE tracestitch_framing_rejected_total counter\n"
    "tracestitch_framing_rejected_total 0\n"
    "# HELP tracestitch_client_timeouts_total Client connections "
    "closed by a header, body or idle timeout\n"
    "# TYPE tracestitch_client_timeouts_total counter\n"
    "tracestitch_client_timeouts_total 0\n"
    "# HELP tracestitch_client_slow_bodies_total Request bodies cut "
    "below server.limits.body_min_rate (408)\n"
    "# TYPE tracestitch_client_slow_bodies_total counter\n"
    "tracestitch_client_slow_bodies_total 0\n"
    "# HELP tracestitch_config_reloads_total Configuration reloads\n"
    "# TYPE tracestitch_config_reloads_total counter\n"
    "tracestitch_config_reloads_total{result=\"ok\"} 1\n"
    "tracestitch_config_reloads_total{result=\"failed\"} 2\n"
    "# HELP tracestitch_accept_errors_total Failed accept() calls, by "
    "errno\n"
    "# TYPE tracestitch_accept_errors_total counter\n"
    "tracestitch_accept_errors_total{reason=\"emfile\"} 3\n"
    "tracestitch_accept_errors_total{reason=\"enfile\"} 0\n"
    "tracestitch_accept_errors_total{reason=\"enobufs\"} 0\n"
    "tracestitch_accept_errors_total{reason=\"enomem\"} 1\n"
    "tracestitch_accept_errors_total{reason=\"other\"} 0\n"
    "# HELP tracestitch_requests_by_protocol_total Requests, by client protocol\n"
    "# TYPE tracestitch_requests_by_protocol_total counter\n"
    "tracestitch_requests_by_protocol_total{protocol=\"http/1.1\"} 0\n"
    "tracestitch_requests_by_protocol_total{protocol=\"h2\"} 0\n"
    "# HELP tracestitch_http2_connections_total Client connections that spoke HTTP/2 (ALPN h2 or h2c)\n"
    "# TYPE tracestitch_http2_connections_total counter\n"
    "tracestitch_http2_connections_total 0\n"
    "# HELP tracestitch_http2_refused_total HTTP/2 streams refused by the translation to HTTP/1.1\n"
    "# TYPE tracestitch_http2_refused_total counter\n"
    "tracestitch_http2_refused_total{reason=\"field_name\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"field_value\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"pseudo_header\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"authority\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"connection_specific\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"te\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"content_length\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"method\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"header_list\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"body_too_large\"} 0\n"
    "tracestitch_http2_refused_total{reason=\"trailers\"} 0\n"
    "# HELP tracestitch_http2_request_trailers_dropped_total HTTP/2 request trailer sections not forwarded to the HTTP/1.1 upstream\n"
    "# TYPE tracestitch_http2_request_trailers_dropped_total counter\n"
    "tracestitch_http2_request_trailers_dropped_total 0\n"
    "# HELP tracestitch_http2_defences_total HTTP/2 denial-of-service defences that fired\n"
    "# TYPE tracestitch_http2_defences_total counter\n"
    "tracestitch_http2_defences_total{defence=\"rapid_reset\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"continuation_flood\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"settings_flood\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"ping_flood\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"empty_frames\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"max_concurrent_streams\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"protocol_error\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"timeout\"} 0\n"
    "tracestitch_http2_defences_total{defence=\"goaway\"} 0\n"
    "# HELP tracestitch_proxy_protocol_refused_total Connections closed "
    "for a missing or malformed PROXY header\n"
    "# TYPE tracestitch_proxy_protocol_refused_total counter\n"
    "tracestitch_proxy_protocol_refused_total 0\n"
    "# HELP tracestitch_body_budget_refusals_total Requests answered 503 "
    "over server.limits.max_buffered_body_bytes\n"
    "# TYPE tracestitch_body_budget_refusals_total counter\n"
    "tracestitch_body_budget_refusals_total 0\n";

START_TEST(test_render_exact)
{
	struct metrics *m1, *m2;
	unsigned api;
	char *out, *p;

	metrics_free_all();
	m1 = metrics_new("worker-1");
	m2 = metrics_new("worker-2");
	api = metrics_route_slot("api");
	ck_assert_uint_eq(api, 1);

	metrics_request(m1, api, 200, 300, 10);
	metrics_request(m1, api, 404, 1500, 5);
	metrics_request(m1, 0, 502, 20000000, 0);
	metrics_request(m2, api, 204, 500, 1);
	metrics_request(m2, api, 101, 0, 0);
	metrics_upstream_error(m1, api, METRICS_UPSTREAM_TIMEOUT);
	metrics_upstream_error(m2, 0, METRICS_UPSTREAM_CONNECT);
	metrics_upstream_error(m2, api, METRICS_UPSTREAM_TLS);
	metrics_upstream_retry(m1, api, 0);
	metrics_upstream_retry(m1, api, 3);
	metrics_upstream_retry(m2, api, 3);
	metrics_upstream_retry(m2, api, METRICS_RETRY_NREASONS);	/* ignored */
	metrics_retry_budget_exhausted(m2, api);
	metrics_cors_preflight(m1, api, true);
	metrics_cors_preflight(m2, api, true);
	metrics_cors_preflight(m1, api, false);
	metrics_cors_preflight(m2, api, false);
	metrics_cors_refusal(m1, api, true, "origin", "");
	metrics_cors_refusal(m2, api, true, "header", "tracestate");
	metrics_cors_refusal(m2, api, false, "origin", "");
	metrics_conn(m1, 1);
	metrics_conn(m1, 1);
	metrics_conn(m2, 1);
	metrics_conn(m1, -1);
	metrics_tunnel(m1, 1);
	metrics_tunnel(m2, 1);
	metrics_tunnel(m1, -1);
	metrics_add(m1, METRICS_CONN_ACCEPTED, 2);
	metrics_add(m2, METRICS_CONN_ACCEPTED, 1);
	metrics_add(m1, METRICS_CONN_REFUSED, 3);
	metrics_add(m2, METRICS_CONN_REFUSED, 1);
	metrics_add(m2, METRICS_RELOADS_OK, 1);
	metrics_add(m1, METRICS_RELOADS_FAILED, 2);
	metrics_add(m1, METRICS_ACCEPT_EMFILE, 2);
	metrics_add(m2, METRICS_ACCEPT_EMFILE, 1);
	metrics_add(m2, METRICS_ACCEPT_ENOMEM, 1);
	metrics_observe(m1, METRICS_H_UPSTREAM_CONNECT, api, 700);
	metrics_observe(m2, METRICS_H_UPSTREAM_RESPONSE, api, 3000);
	metrics_prop_stats(m1)->extracted[CONFIG_STYLE_DATADOG] = 2;
	metrics_prop_stats(m2)->invalid[CONFIG_STYLE_B3] = 1;
	metrics_prop_stats(m1)->continued = 2;
	metrics_prop_stats(m2)->new_traces = 3;
	metrics_prop_stats(m2)->restarted = 1;
	metrics_prop_stats(m1)->links = 1;

	out = metrics_render();
	ck_assert_ptr_nonnull(out);
	/* build_info and process_* first: their values vary, see below. */
	p = strstr(out, "# HELP tracestitch_requests_total");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p, expected_render);
	free(out);
	metrics_free_all();
}
END_TEST

/* No blocks at all: every family still renders, with zeros. */
START_TEST(test_render_empty)
{
	char *out;

	metrics_free_all();
	out = metrics_render();
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(series_value(out, "tracestitch_open_connections"), 0);
	ck_assert_int_eq(series_value(out, "tracestitch_websocket_tunnels"), 0);
	ck_assert_int_eq(series_value(out,
	    "tracestitch_requests_total{route=\"unmatched\",code=\"2xx\"}"), 0);
	ck_assert_int_eq(series_value(out,
	    "tracestitch_request_duration_seconds_count{route=\"unmatched\"}"),
	    0);
	ck_assert(strstr(out, "tracestitch_request_duration_seconds_sum"
	    "{route=\"unmatched\"} 0\n") != NULL);
	/* One HELP and one TYPE per family, even for shared names. */
	ck_assert_int_eq(count_of(out,
	    "# TYPE tracestitch_config_reloads_total counter\n"), 1);
	ck_assert_int_eq(count_of(out, "# HELP "), count_of(out, "# TYPE "));
	/*
	 * 24 families besides the counters (build_info, 6 process_*, 3
	 * histograms, 3 propagation, 8 per route, connections, buffered
	 * body bytes and WebSocket tunnels), which share five names:
	 * config_reloads_total (2 rows),
	 * accept_errors_total (5), requests_by_protocol_total (2),
	 * http2_refused_total (11), http2_defences_total (9).
	 */
	ck_assert_int_eq(count_of(out, "# TYPE "), 24 + METRICS_NCOUNTERS -
	    1 - 4 - 1 - 10 - 8);
	free(out);
	metrics_free_all();
}
END_TEST

START_TEST(test_label_escaping)
{
	struct metrics *m;
	unsigned slot;
	char *out;

	metrics_free_all();
	m = metrics_new("w");
	slot = metrics_route_slot("we\"ird\\name\nx");
	metrics_request(m, slot, 200, 1, 0);
	out = metrics_render();
	ck_assert_int_eq(series_value(out, "tracestitch_requests_total{route="
	    "\"we\\\"ird\\\\name\\nx\",code=\"2xx\"}"), 1);
	free(out);
	metrics_free_all();
}
END_TEST

static const struct {
	uint64_t us;
	const char *le;		/* the smallest bucket that counts it */
	const char *below;	/* the bucket just below, or NULL */
} bucket_cases[] = {
	{ 0, "0.0005", NULL },
	{ 500, "0.0005", NULL },
	{ 501, "0.001", "0.0005" },
	{ 2500, "0.0025", "0.001" },
	{ 2501, "0.005", "0.0025" },
	{ 99999, "0.1", "0.05" },
	{ 1000000, "1", "0.5" },
	{ 10000000, "10", "5" },
	{ 10000001, "+Inf", "10" },
	{ UINT64_C(1) << 40, "+Inf", "10" },
};

START_TEST(test_histogram_buckets)
{
	struct metrics *m;
	char series[128], *out;

	metrics_free_all();
	m = metrics_new("w");
	metrics_request(m, 0, 200, bucket_cases[_i].us, 0);
	out = metrics_render();
	snprintf(series, sizeof series,
	    "tracestitch_request_duration_seconds_bucket{route="
	    "\"unmatched\",le=\"%s\"}",
	    bucket_cases[_i].le);
	ck_assert_int_eq(series_value(out, series), 1);
	ck_assert_int_eq(series_value(out, "tracestitch_request_duration_"
	    "seconds_bucket{route=\"unmatched\",le=\"+Inf\"}"), 1);
	if (bucket_cases[_i].below != NULL) {
		snprintf(series, sizeof series,
		    "tracestitch_request_duration_seconds_bucket{route="
	    "\"unmatched\",le=\"%s\"}",
		    bucket_cases[_i].below);
		ck_assert_int_eq(series_value(out, series), 0);
	}
	free(out);
	metrics_free_all();
}
END_TEST

/* Buckets are cumulative and _sum is in seconds. */
START_TEST(test_histogram_cumulative)
{
	struct metrics *m;
	char *out;
	unsigned i;

	metrics_free_all();
	m = metrics_new("w");
	for (i = 0; i < TS_NITEMS(bucket_cases); i++)
		metrics_request(m, 0, 200, bucket_cases[i].us % 20000000, 0);
	out = metrics_render();
	ck_assert_int_eq(series_value(out, "tracestitch_request_duration_"
	    "seconds_bucket{route=\"unmatched\",le=\"0.0005\"}"), 2);
	ck_assert_int_eq(series_value(out, "tracestitch_request_duration_"
	    "seconds_bucket{route=\"unmatched\",le=\"0.0025\"}"), 4);
	ck_assert_int_eq(series_value(out, "tracestitch_request_duration_"
	    "seconds_bucket{route=\"unmatched\",le=\"1\"}"), 7);
	ck_assert_int_eq(series_value(out, "tracestitch_request_duration_"
	    "seconds_bucket{route=\"unmatched\",le=\"10\"}"), 8);
	ck_assert_int_eq(series_value(out, "tracestitch_request_duration_"
	    "seconds_bucket{route=\"unmatched\",le=\"+Inf\"}"), 10);
	ck_assert_int_eq(series_value(out, "tracestitch_request_duration_"
	    "seconds_count{route=\"unmatched\"}"), 10);
	free(out);

	metrics_free_all();
	m = metrics_new("w");
	metrics_request(m, 0, 200, 1, 0);
	metrics_request(m, 0, 200, 2500000, 0);
	out = metrics_render();
	ck_assert(strstr(out, "tracestitch_request_duration_seconds_sum"
	    "{route=\"unmatched\"} 2.500001\n") != NULL);
	free(out);
	metrics_free_all();
}
END_TEST

START_TEST(test_route_slots)
{
	char name[32];
	unsigned i, a, b;

	metrics_free_all();
	ck_assert_uint_eq(metrics_route_slot(NULL), 0);
	ck_assert_uint_eq(metrics_route_slot(""), 0);
	ck_assert_uint_eq(metrics_route_slot("unmatched"), 0);
	a = metrics_route_slot("a");
	b = metrics_route_slot("b");
	ck_assert_uint_eq(a, 1);
	ck_assert_uint_eq(b, 2);
	ck_assert_uint_eq(metrics_route_slot("a"), a);
	ck_assert_uint_eq(metrics_route_slot("b"), b);
	for (i = 3; i < METRICS_MAX_ROUTES; i++) {
		snprintf(name, sizeof name, "r%u", i);
		ck_assert_uint_eq(metrics_route_slot(name), i);
	}
	ts_expect_warning("more than");
	ck_assert_uint_eq(metrics_route_slot("one-too-many"), 0);
	ck_assert_int_eq(ts_warnings_seen, 1);
	ts_expect_warning(NULL);
	ck_assert_uint_eq(metrics_route_slot("r77"), 77);
	ck_assert_uint_eq(metrics_route_slot("a"), a);
	metrics_free_all();
}
END_TEST

/* Out-of-range arguments are ignored or folded, never written past. */
START_TEST(test_bad_arguments)
{
	struct metrics *m;
	char *out;

	metrics_free_all();
	m = metrics_new(NULL);
	metrics_request(m, METRICS_MAX_ROUTES + 5, 200, 1, 3);
	metrics_request(m, 0, 0, 1, 0);
	metrics_request(m, 0, 600, 1, 0);
	metrics_upstream_error(m, 9999, METRICS_UPSTREAM_RESET);
	metrics_upstream_error(m, 0, METRICS_UPSTREAM_NKINDS);
	metrics_add(m, METRICS_NCOUNTERS, 1);
	metrics_conn(m, -1);
	out = metrics_render();
	ck_assert_int_eq(series_value(out,
	    "tracestitch_requests_total{route=\"unmatched\",code=\"2xx\"}"), 1);
	ck_assert_int_eq(series_value(out,
	    "tracestitch_response_bytes_total{route=\"unmatched\"}"), 3);
	ck_assert_int_eq(series_value(out,
	    "tracestitch_request_duration_seconds_count{route=\"unmatched\"}"),
	    3);
	ck_assert_int_eq(series_value(out, "tracestitch_upstream_errors_total"
	    "{route=\"unmatched\",kind=\"reset\"}"), 1);
	ck_assert_int_eq(series_value(out, "tracestitch_open_connections"), -1);
	free(out);
	metrics_free_all();
}
END_TEST

#define WRITES 100000

struct writer {
	pthread_t thread;
	struct metrics *m;
	unsigned route;
};

static int writers_done;
static int writers_go;

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	int i;

	while (!__atomic_load_n(&writers_go, __ATOMIC_ACQUIRE))
		;	/* spin: start together with the reader */
	for (i = 0; i < WRITES; i++) {
		metrics_request(w->m, w->route, 200, 100, 1);
		metrics_add(w->m, METRICS_CONN_ACCEPTED, 1);
	}
	__atomic_add_fetch(&writers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

START_TEST(test_threads)
{
	static const char series[] =
	    "tracestitch_requests_total{route=\"api\",code=\"2xx\"}";
	struct writer w[2];
	long long last = 0, v;
	unsigned api;
	int i, renders = 0;
	char *out;

	metrics_free_all();
	writers_done = 0;
	writers_go = 0;
	api = metrics_route_slot("api");
	for (i = 0; i < 2; i++) {
		w[i].m = metrics_new("writer");
		w[i].route = api;
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL,
		    writer_main, &w[i]), 0);
	}
	/* Render while they write: values only grow, never past the end. */
	__atomic_store_n(&writers_go, 1, __ATOMIC_RELEASE);
	do {
		out = metrics_render();
		ck_assert_ptr_nonnull(out);
		v = series_value(out, series);
		ck_assert_int_ge(v, last);
		ck_assert_int_le(v, 2 * WRITES);
		last = v;
		renders++;
		free(out);
	} while (__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE) < 2);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(w[i].thread, NULL), 0);
	out = metrics_render();
	ck_assert_int_eq(series_value(out, series), 2 * WRITES);
	ck_assert_int_eq(series_value(out,
	    "tracestitch_connections_accepted_total"), 2 * WRITES);
	ck_assert_int_eq(series_value(out,
	    "tracestitch_response_bytes_total{route=\"api\"}"), 2 * WRITES);
	ck_assert_int_eq(series_value(out,
	    "tracestitch_request_duration_seconds_bucket{route=\"api\","
	    "le=\"0.0005\"}"), 2 * WRITES);
	ck_assert(strstr(out, "tracestitch_request_duration_seconds_sum"
	    "{route=\"api\"} 20\n") != NULL);
	ck_assert_int_ge(renders, 1);
	free(out);
	metrics_free_all();
}
END_TEST

/*
 * OpenMetrics: counter families without _total in HELP/TYPE (samples
 * keep it), the newest exemplar of each bucket with its trace id, # EOF;
 * the Prometheus text rendering carries no exemplar.
 */
START_TEST(test_openmetrics_exemplars)
{
	struct metrics *m1, *m2;
	unsigned api;
	char *om, *text, *p;
	size_t len;

	metrics_free_all();
	m1 = metrics_new("w1");
	m2 = metrics_new("w2");
	api = metrics_route_slot("api");
	metrics_request(m1, api, 200, 300, 0);
	metrics_exemplar(m1, METRICS_H_REQUEST, api, 300, 0x0102, 0x0304,
	    1700000000123ULL);
	/* A newer one in the same bucket, on another worker, wins. */
	metrics_request(m2, api, 200, 400, 0);
	metrics_exemplar(m2, METRICS_H_REQUEST, api, 400, 0xab, 0xcd,
	    1700000001456ULL);
	metrics_observe(m1, METRICS_H_UPSTREAM_RESPONSE, api, 2000);
	metrics_exemplar(m1, METRICS_H_UPSTREAM_RESPONSE, api, 2000, 0, 7,
	    1700000002000ULL);

	om = metrics_render_openmetrics();
	text = metrics_render();
	ck_assert_ptr_nonnull(om);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strstr(om, "tracestitch_request_duration_seconds_bucket"
	    "{route=\"api\",le=\"0.0005\"} 2 # {trace_id=\"00000000000000ab"
	    "00000000000000cd\"} 0.0004 1700000001.456\n") != NULL, "%s", om);
	ck_assert_msg(strstr(om, "tracestitch_upstream_response_duration_"
	    "seconds_bucket{route=\"api\",le=\"0.0025\"} 1 # {trace_id=\""
	    "00000000000000000000000000000007\"} 0.002 1700000002.000\n") !=
	    NULL, "%s", om);
	/* Buckets without an observation have no exemplar. */
	ck_assert(strstr(om, "tracestitch_request_duration_seconds_bucket"
	    "{route=\"api\",le=\"0.001\"} 2\n") != NULL);
	ck_assert(strstr(om, "# TYPE tracestitch_requests counter\n") != NULL);
	ck_assert(strstr(om, "# HELP tracestitch_requests Requests") != NULL);
	ck_assert(strstr(om, "# TYPE tracestitch_requests_total") == NULL);
	ck_assert(strstr(om, "tracestitch_requests_total{route=\"api\","
	    "code=\"2xx\"} 2\n") != NULL);
	ck_assert(strstr(om, "# TYPE process_cpu_seconds counter\n") != NULL);
	ck_assert(strstr(om, "# TYPE tracestitch_open_connections gauge\n") !=
	    NULL);
	len = strlen(om);
	ck_assert(len > 6 && strcmp(om + len - 6, "# EOF\n") == 0);
	ck_assert_int_eq(count_of(om, "# EOF"), 1);

	ck_assert(strstr(text, " # {") == NULL);
	ck_assert(strstr(text, "# EOF") == NULL);
	ck_assert(strstr(text, "# TYPE tracestitch_requests_total counter\n")
	    != NULL);
	/* Apart from exemplars and names, the two say the same. */
	p = strstr(text, "tracestitch_request_duration_seconds_count"
	    "{route=\"api\"} 2\n");
	ck_assert_ptr_nonnull(p);
	free(om);
	free(text);
	metrics_free_all();
}
END_TEST

/* build_info and the process_* metrics of this very process. */
START_TEST(test_process_metrics)
{
	char *out, *p;
	double start, now = (double)time(NULL);

	metrics_free_all();
	out = metrics_render();
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(strstr(out, "tracestitch_build_info{version=\""
	    TS_VERSION "\",commit=\"") != NULL, "%s", out);
	ck_assert_int_gt(series_value(out, "process_open_fds"), 2);
	ck_assert_int_gt(series_value(out, "process_resident_memory_bytes"),
	    1 << 20);
	ck_assert_int_gt(series_value(out, "process_max_fds"), 0);
	p = strstr(out, "\nprocess_start_time_seconds ");
	ck_assert_ptr_nonnull(p);
	start = strtod(p + 28, NULL);
	/* This test process started within the last hour, not later. */
	ck_assert_msg(start > now - 3600 && start <= now + 1, "start %f now %f",
	    start, now);
	ck_assert_ptr_nonnull(strstr(out, "\nprocess_cpu_seconds_total "));
	free(out);
	metrics_free_all();
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc;

	tc = tcase_create("render");
	tcase_add_test(tc, test_render_exact);
	tcase_add_test(tc, test_render_empty);
	tcase_add_test(tc, test_label_escaping);
	tcase_add_loop_test(tc, test_histogram_buckets, 0,
	    TS_NITEMS(bucket_cases));
	tcase_add_test(tc, test_histogram_cumulative);
	tcase_add_test(tc, test_openmetrics_exemplars);
	tcase_add_test(tc, test_process_metrics);
	suite_add_tcase(s, tc);

	tc = tcase_create("slots");
	tcase_add_test(tc, test_route_slots);
	tcase_add_test(tc, test_bad_arguments);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_add_test(tc, test_threads);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(metrics_suite)
