package eventhubs

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// newCredential builds the Azure identity the credential block names.
func newCredential(c *Credential) (azcore.TokenCredential, error) {
	switch c.Type {
	case "", "default":
		return azidentity.NewDefaultAzureCredential(nil)
	case "workload":
		opts := &azidentity.WorkloadIdentityCredentialOptions{ClientID: c.ClientID, TenantID: c.TenantID}
		return azidentity.NewWorkloadIdentityCredential(opts)
	case "managed":
		opts := &azidentity.ManagedIdentityCredentialOptions{}
		if c.ClientID != "" {
			opts.ID = azidentity.ClientID(c.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(opts)
	case "client_secret":
		return azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.ClientSecret, nil)
	}
	return nil, fmt.Errorf("unknown credential type %q", c.Type)
}

// token gets an access token for scope.
func token(ctx context.Context, cred azcore.TokenCredential, scope string) (string, error) {
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		return "", fmt.Errorf("eventhubs: token for %s: %w", scope, err)
	}
	return tok.Token, nil
}
