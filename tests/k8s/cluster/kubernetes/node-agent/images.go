package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// imageConfig is what cluster.sh extracts from an image's Dockerfile.
type imageConfig struct {
	Binary     string   `json:"binary"`
	Entrypoint []string `json:"entrypoint"`
	Cmd        []string `json:"cmd"`
	User       string   `json:"user"`
	Workdir    string   `json:"workdir"`
	Env        []string `json:"env"`
	Volumes    []string `json:"volumes"`
}

// imageStore reads the images file again when it changes, so cluster.sh may add images
// while the agent runs.
type imageStore struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	images  map[string]imageConfig
	digests map[string]string // binary path + mtime -> sha256
}

func (s *imageStore) load() (map[string]imageConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := os.Stat(s.path)
	if err != nil {
		return nil, err
	}
	if s.images != nil && st.ModTime().Equal(s.modTime) {
		return s.images, nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, err
	}
	images := map[string]imageConfig{}
	if err := json.Unmarshal(data, &images); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	s.images, s.modTime = images, st.ModTime()
	return images, nil
}

// resolve maps an image reference to its config by repository, ignoring tag and digest.
func (s *imageStore) resolve(image string) (imageConfig, error) {
	images, err := s.load()
	if err != nil {
		return imageConfig{}, err
	}
	repo := imageRepository(image)
	for name, cfg := range images {
		if imageRepository(name) == repo {
			return cfg, nil
		}
	}
	known := make([]string, 0, len(images))
	for name := range images {
		known = append(known, name)
	}
	sort.Strings(known)
	return imageConfig{}, fmt.Errorf("failed to pull and unpack image %q: repository %q is not served by this node (known: %s)",
		image, repo, strings.Join(known, ", "))
}

// imageID is "<repo>@sha256:<digest of the binary>", cached per binary modification time.
func (s *imageStore) imageID(image string, cfg imageConfig) string {
	st, err := os.Stat(cfg.Binary)
	if err != nil {
		return imageRepository(image)
	}
	key := fmt.Sprintf("%s@%d", cfg.Binary, st.ModTime().UnixNano())
	s.mu.Lock()
	digest, ok := s.digests[key]
	s.mu.Unlock()
	if !ok {
		f, err := os.Open(cfg.Binary)
		if err != nil {
			return imageRepository(image)
		}
		h := sha256.New()
		_, _ = io.Copy(h, f)
		f.Close()
		digest = hex.EncodeToString(h.Sum(nil))
		s.mu.Lock()
		if s.digests == nil {
			s.digests = map[string]string{}
		}
		s.digests[key] = digest
		s.mu.Unlock()
	}
	return imageRepository(image) + "@sha256:" + digest
}

// imageRepository strips a digest and a tag, and the implicit docker.io/ and library/
// prefixes, so "docker.io/redis-failover/rf-server:1@sha256:..." is "redis-failover/rf-server".
func imageRepository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	// A tag follows the last ':' only when no '/' comes after it (a registry port does).
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		image = image[:i]
	}
	image = strings.TrimPrefix(image, "docker.io/")
	image = strings.TrimPrefix(image, "index.docker.io/")
	image = strings.TrimPrefix(image, "library/")
	return image
}

// parseUser reads a Dockerfile USER of numeric "uid[:gid]" form; names are not resolvable
// without the image's /etc/passwd, so they mean root.
func parseUser(user string) (uid, gid int64, ok bool) {
	if user == "" {
		return 0, 0, true
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if _, err := fmt.Sscan(u, &uid); err != nil {
		return 0, 0, false
	}
	gid = uid
	if hasGroup {
		if _, err := fmt.Sscan(g, &gid); err != nil {
			return 0, 0, false
		}
	}
	return uid, gid, true
}
