package applytest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

// HTTPGetInNetNS GETs path of the HTTP server at addr over a connection
// dialled from inside the network namespace at nsPath (only the dial
// needs the namespace), within dial for the connection and total for the
// whole exchange. It returns the body; a status other than 200 is an
// error that carries the body too.
func HTTPGetInNetNS(nsPath, addr, path string, dial, total time.Duration) ([]byte, error) {
	var conn net.Conn
	if err := nsfile.Do(nsPath, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, dial)
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(total))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: status %s, body %q", path, resp.Status, body)
	}
	return body, nil
}
