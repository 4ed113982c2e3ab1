/* test_framing.c: not written yet; skipped. */
int main(void);
int
main(void)
{
	return 77;
}
