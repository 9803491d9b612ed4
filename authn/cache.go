package authn

import (
	"sync"
	"time"
)

// tokenCache maps SHA-256 hashes of verified tokens to their identities until an expiry. It never
// holds a token. When full, it drops expired entries and then arbitrary ones down to three
// quarters of its size, so a full cache pays for the scan once per quarter of its size. It keeps
// no clock: callers pass the time, from the Authenticator's clock.
type tokenCache struct {
	max int

	mu      sync.RWMutex
	entries map[[32]byte]cacheEntry
}

type cacheEntry struct {
	id      *Identity
	expires time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]cacheEntry)}
}

// get returns the identity cached under key if it has not expired at now.
func (c *tokenCache) get(key [32]byte, now time.Time) (*Identity, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e.id, true
}

// put caches id under key until expires; now decides which entries have expired when the cache
// is full.
func (c *tokenCache) put(key [32]byte, id *Identity, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) <= c.max*3/4 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{id: id, expires: expires}
}

// len returns the number of entries, expired ones included.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
