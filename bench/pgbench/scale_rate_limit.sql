-- Scale section: a few hot limiter keys shared by all clients, next to many
-- idle keys; the burst is large, so nearly every call is allowed
\set k random(1, 4)
SELECT allowed FROM singleton_rate_limit('hot.' || :k, 1000000, 1000000, '1 second');
