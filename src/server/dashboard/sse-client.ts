/**
 * A small server-sent-events reader for `ballot demo`: one node's `/events?cluster=1`, read again a
 * moment after it ends (the node was killed, or restarted). Written here rather than taken from the
 * `eventsource` package so that its retry is immediate and its only state is what the demo needs.
 */
import http from 'node:http'

/** Reads one node's event stream until closed; `onEvent` gets each event's name and data. */
export class SseReader {
  private request: http.ClientRequest | undefined
  private timer: NodeJS.Timeout | undefined
  private closed = false

  /**
   * @param url the stream (http only: the demo's nodes are on loopback)
   * @param onEvent called with each event's name ('message' when it has none) and its data
   * @param retryMs how long to wait before reading again after the stream ends or cannot be opened
   */
  constructor(
    private readonly url: string,
    private readonly onEvent: (name: string, data: string) => void,
    private readonly retryMs = 250,
  ) {
    this.open()
  }

  /** Stops reading for good. */
  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.request?.destroy()
  }

  private open(): void {
    if (this.closed) return
    let buffer = ''
    const req = http.get(this.url, { headers: { Accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        return
      }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end = buffer.indexOf('\n\n')
        while (end >= 0) {
          this.dispatch(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
          end = buffer.indexOf('\n\n')
        }
      })
    })
    this.request = req
    // Whatever ends the stream (refused, reset, the node closing it), read again after a moment.
    req.on('error', () => undefined)
    req.on('close', () => {
      if (this.request !== req || this.closed) return
      this.timer = setTimeout(() => this.open(), this.retryMs)
    })
  }

  private dispatch(block: string): void {
    let name = 'message'
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
    }
    if (data.length > 0) this.onEvent(name, data.join('\n'))
  }
}
