-- one hot key read by every client
SELECT singleton_get('k1');
