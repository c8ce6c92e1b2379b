package awsiam

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/iam"
)

type noClient struct{}

func (noClient) GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error) {
	return nil, fmt.Errorf("not called in this test")
}

// TestCacheIsBoundedLRU: however many roles ServiceAccounts name, the cache holds at most
// maxEntries answers, and the one dropped for a new role is the least recently used.
func TestCacheIsBoundedLRU(t *testing.T) {
	s, err := New(context.Background(), Options{Client: noClient{}})
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return fmt.Sprintf("arn:aws:iam::123456789012:role/r%d", i) }
	for i := range maxEntries {
		s.store(key(i), Policy{Document: "{}"}, nil)
	}
	if _, _, ok := s.lookup(key(0)); !ok { // now the most recently used
		t.Fatal("role 0 not cached")
	}
	for i := maxEntries; i < maxEntries+10; i++ {
		s.store(key(i), Policy{Document: "{}"}, nil)
	}
	if n := len(s.cache.Keys()); n != maxEntries {
		t.Errorf("%d entries cached, want the bound %d", n, maxEntries)
	}
	if _, _, ok := s.lookup(key(0)); !ok {
		t.Error("role 0, used just before, was evicted")
	}
	for i := 1; i <= 10; i++ {
		if _, _, ok := s.lookup(key(i)); ok {
			t.Errorf("role %d, the least recently used, is still cached", i)
		}
	}
	if _, _, ok := s.lookup(key(maxEntries + 9)); !ok {
		t.Error("the newest role is not cached")
	}
}
