"""The image encoder's strided 1x1 shortcut: the same numbers as ``nn.Conv2d``, forward and backward,
on the channels-last images the data pipeline makes (oneDNN's own kernel for it corrupted the heap on
an AVX2-only CPU; this runs the case that crashed, so a regression aborts the suite)."""
import torch
from torch import nn

from any2seq.encoders.image import StridedPointwise


def test_strided_pointwise_equals_a_strided_1x1_convolution_on_channels_last_input():
    torch.manual_seed(0)
    ours = StridedPointwise(4, 8, 2)
    ref = nn.Conv2d(4, 8, 1, 2, bias=False)
    ref.weight = ours.weight
    assert list(dict(ours.named_parameters())) == ["weight"]  # saved models keep their keys
    for size in (16, 15):
        x = torch.rand(4, size, size, 4).permute(0, 3, 1, 2).requires_grad_()  # (B, C, H, W), channels-last
        y = ours(x)
        y.square().sum().backward()
        grads = x.grad.clone(), ours.weight.grad.clone()
        x.grad, ours.weight.grad = None, None
        with torch.backends.mkldnn.flags(enabled=False):  # the reference, off the kernel in question
            want = ref(x)
            want.square().sum().backward()
        torch.testing.assert_close(y, want)
        torch.testing.assert_close(grads[0], x.grad)
        torch.testing.assert_close(grads[1], ours.weight.grad)
        x.grad, ours.weight.grad = None, None
