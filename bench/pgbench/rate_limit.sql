-- one limiter key per client; the burst is large, so nearly every call is allowed
SELECT allowed FROM singleton_rate_limit('rl' || :client_id, 1000000, 1000000, '1 second');
