from .relevance import input_gradient_penalty, mask_to_grid, relevance_loss

__all__ = ["input_gradient_penalty", "mask_to_grid", "relevance_loss"]
