-- floor: one round trip doing nothing
SELECT 1;
