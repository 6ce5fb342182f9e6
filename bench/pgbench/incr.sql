-- one counter shared by every client
SELECT singleton_incr('counter');
