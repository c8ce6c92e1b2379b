package iamserver

import "path/filepath"

// ClientEnv is the environment that points the real AWS SDK of a child process at this
// endpoint, the way users configure it: endpoint, region and static credentials in variables.
// The access key is registered with the server first (its STS verifies signatures); the
// shared config and credentials files are named inside home, where none exist, and instance
// metadata is off, so nothing of this machine's own AWS configuration is read.
func (s *Server) ClientEnv(home, accessKeyID, secretAccessKey string) []string {
	s.AddAccessKey(accessKeyID, secretAccessKey)
	return []string{
		"HOME=" + home,
		"AWS_ENDPOINT_URL=" + s.URL(),
		"AWS_ACCESS_KEY_ID=" + accessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + secretAccessKey,
		"AWS_REGION=us-east-1",
		"AWS_PROFILE=",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "aws-credentials"),
	}
}
